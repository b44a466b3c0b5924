"""A batched simulated-user environment that steps many users at once in NumPy.

Each of the ``num_envs`` users follows exactly the semantics of
:class:`~metarec.envs.simulated.SimulatedUserEnv`, with its own generator.
``reset(seed=s)`` seeds user ``b`` with ``s + b`` (or ``seed[b]`` for a list),
as ``gymnasium.vector.SyncVectorEnv`` seeds its copies. User ``b`` of this
environment and a single environment reset with the same seed, task and
slates therefore produce the same tokens, clicks and rewards.

Autoreset follows Gymnasium's next-step mode: the step after a user's episode
ends resets that user (drawing a task uniformly), ignores its action and
returns reward 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarec.envs.episode import (
    PAD_FEEDBACK,
    allowed_items,
    check_settings,
    check_tasks,
    draw_episode,
)
from metarec.envs.response import ResponseModel
from metarec.envs.rewards import RewardModel
from metarec.envs.simulated import DEFAULT_PATIENCE, make_reward_model, observation_space
from metarec.errors import ConfigError
from metarec.session import CLICK, SKIP, Session
from metarec.tasks.task import Task

Observation = dict[str, np.ndarray]


class SimulatedUserVectorEnv(VectorEnv[Observation, np.ndarray, np.ndarray]):
    """``num_envs`` simulated users stepped together; see the module docstring for seeding.

    ``reset(options={"task": indices})`` plays ``tasks[indices[b]]`` for user ``b``;
    ``options={"reset_mask": mask}`` resets only the users where ``mask`` is True.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012 (Gymnasium API)

    def __init__(
        self,
        response: ResponseModel,
        tasks: Sequence[Task],
        num_envs: int,
        slate_size: int = 10,
        rounds: int = 20,
        max_tokens: int = 160,
        reward: str | RewardModel = "click",
        patience: int | None = DEFAULT_PATIENCE,
    ) -> None:
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1; got {num_envs}")
        n_items = response.n_items
        check_settings(slate_size, rounds, max_tokens, patience)
        check_tasks(tasks, response, n_items, slate_size)
        self.response, self.tasks = response, list(tasks)
        self.num_envs, self.n_items = num_envs, n_items
        self.slate_size, self.rounds, self.max_tokens = slate_size, rounds, max_tokens
        self.patience = patience
        self.reward_model = make_reward_model(reward, n_items)
        self.examination = response.examination(slate_size)
        self.single_observation_space = observation_space(n_items, max_tokens)
        self.single_action_space = spaces.MultiDiscrete(np.full(slate_size, n_items))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._allocate(max(len(task.history) for task in self.tasks))
        self._generators: list[np.random.Generator | None] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def _allocate(self, max_history: int) -> None:
        batch, n_items, dim = self.num_envs, self.n_items, self.response.dim
        # At least max_tokens columns, so the observation of a short session is a slice.
        capacity = max(max_history + self.rounds * self.slate_size, self.max_tokens)
        self._token_items = np.zeros((batch, capacity), dtype=np.int64)
        self._token_feedback = np.zeros((batch, capacity), dtype=np.int64)
        self._lengths = np.zeros(batch, dtype=np.int64)
        self._history_lengths = np.zeros(batch, dtype=np.int64)
        self._allowed = np.ones((batch, n_items), dtype=bool)
        self._shown = np.zeros((batch, n_items), dtype=bool)
        self._remaining = np.zeros(batch, dtype=np.int64)
        self._exam = np.zeros((batch, self.rounds, self.slate_size))
        self._click = np.zeros((batch, n_items))
        self._purchase = np.zeros((batch, n_items))
        self._preference = np.zeros((batch, dim))
        self._drift_to = np.zeros((batch, dim))
        self._drift_step = np.full(batch, np.iinfo(np.int64).max, dtype=np.int64)
        self._drift_span = np.ones(batch, dtype=np.int64)
        self.task_index = np.zeros(batch, dtype=np.int64)
        self.step_index = np.zeros(batch, dtype=np.int64)
        self.slates_without_click = np.zeros(batch, dtype=np.int64)
        self.user_quit = np.zeros(batch, dtype=bool)

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Observation, dict[str, Any]]:
        seeds = self._seeds(seed)
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)))
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},)")
        task_option = options.get("task")
        if task_option is not None:
            task_option = np.broadcast_to(np.asarray(task_option, dtype=np.int64), mask.shape)
        for user in np.flatnonzero(mask):
            if seeds[user] is not None or self._generators[user] is None:
                self._generators[user] = seeding.np_random(seeds[user])[0]
            task = None if task_option is None else int(task_option[user])
            self._reset_user(int(user), task)
        self._autoreset[mask] = False
        info = {"task": self.task_index.copy(), "_task": mask.copy()}
        return self._observations(), info

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int | np.integer):
            return [int(seed) + user for user in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"a list of seeds must have num_envs={self.num_envs} entries")
        return seeds

    def _reset_user(self, user: int, task_index: int | None) -> None:
        rng = self._generators[user]
        if rng is None:
            rng = self._generators[user] = seeding.np_random()[0]
        if task_index is None:
            task_index = int(rng.integers(len(self.tasks)))
        elif not 0 <= task_index < len(self.tasks):
            raise ValueError(f"task index {task_index} is outside [0, {len(self.tasks)})")
        task = self.tasks[task_index]
        draws = draw_episode(rng, self.rounds, self.slate_size, self.n_items)
        self._exam[user], self._click[user], self._purchase[user] = (
            draws.exam,
            draws.click,
            draws.purchase,
        )
        history = np.asarray(task.history, dtype=np.int64)
        self._token_items[user, : history.shape[0]] = history
        self._token_feedback[user, : history.shape[0]] = 0
        self._lengths[user] = self._history_lengths[user] = history.shape[0]
        self._allowed[user] = allowed_items(task, self.n_items)
        self._shown[user] = False
        self._shown[user, history] = True
        self._remaining[user] = np.count_nonzero(self._allowed[user] & ~self._shown[user])
        self._set_preference(user, task)
        self.task_index[user] = task_index
        self.step_index[user] = 0
        self.slates_without_click[user] = 0
        self.user_quit[user] = False

    def _set_preference(self, user: int, task: Task) -> None:
        self._preference[user] = task.preference
        drifting = task.drift_to is not None and task.drift_step is not None
        self._drift_to[user] = task.drift_to if drifting else task.preference
        drift_step = task.drift_step if drifting and task.drift_step is not None else None
        self._drift_step[user] = np.iinfo(np.int64).max if drift_step is None else drift_step
        self._drift_span[user] = max(task.drift_span, 1)

    def preferences(self, users: np.ndarray | None = None) -> np.ndarray:
        """Return the preference in force at each user's current step, as ``Task.preference_at``."""
        users = np.arange(self.num_envs) if users is None else users
        step = self.step_index[users]
        since = step - self._drift_step[users] + 1
        weight = np.where(since > 0, np.minimum(1.0, since / self._drift_span[users]), 0.0)
        weight = weight[:, None]
        drifted = (1.0 - weight) * self._preference[users] + weight * self._drift_to[users]
        return np.where(since[:, None] > 0, drifted, self._preference[users])

    def allowed_mask(self) -> np.ndarray:
        """Return the bool ``(num_envs, n_items)`` mask of items each user may be shown now."""
        return self._allowed & ~self._shown

    def attraction(self) -> np.ndarray:
        """Return the true click probabilities ``(num_envs, n_items)`` now (for oracles only)."""
        return self.response.attraction(self.preferences())

    def item_values(self) -> np.ndarray:
        """Return the expected reward ``(num_envs, n_items)`` of every item if examined now."""
        attraction = self.attraction()
        items = np.broadcast_to(np.arange(self.n_items), attraction.shape)
        return attraction * self.reward_model.click_value(attraction, items)

    def sessions(self) -> list[Session]:
        """Return each user's session so far, as the single environment's ``session``."""
        return [
            Session(self._token_items[b, :length].copy(), self._token_feedback[b, :length].copy())
            for b, length in enumerate(self._lengths)
        ]

    def step(
        self, actions: np.ndarray
    ) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (self.num_envs, self.slate_size):
            raise ValueError(
                f"actions must have shape ({self.num_envs}, {self.slate_size}); got {actions.shape}"
            )

        # Next-step autoreset: users whose episode ended last step start a new one instead.
        for user in np.flatnonzero(self._autoreset):
            self._reset_user(int(user), None)
        playing = np.flatnonzero(~self._autoreset)

        rewards = np.zeros(self.num_envs)
        expected = np.zeros(self.num_envs)
        clicked = np.zeros((self.num_envs, self.slate_size), dtype=bool)
        if playing.size:
            slates = actions[playing]
            self._check_slates(playing, slates)
            outcome = self._respond(playing, slates)
            clicked[playing], rewards[playing], expected[playing] = outcome
            self._record(playing, slates, clicked[playing])

        terminated = np.zeros(self.num_envs, dtype=bool)
        terminated[playing] = self._finished(playing)
        self._autoreset = terminated.copy()
        stepped = np.zeros(self.num_envs, dtype=bool)
        stepped[playing] = True

        info = {
            "clicked": clicked,
            "_clicked": stepped,
            "quit": self.user_quit & stepped,
            "_quit": stepped,
            "expected_reward": expected,
            "_expected_reward": stepped,
        }
        truncated = np.zeros(self.num_envs, dtype=bool)
        return self._observations(), rewards, terminated, truncated, info

    def _respond(
        self, users: np.ndarray, slates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        attraction = self.response.item_attraction(self.preferences(users), slates)
        examined = self._exam[users, self.step_index[users]] < self.examination
        clicked = examined & (self._click[users[:, None], slates] < attraction)
        purchase_draws = self._purchase[users[:, None], slates]
        rewards = self.reward_model.realised(clicked, attraction, slates, purchase_draws)
        value = self.reward_model.click_value(attraction, slates)
        expected = np.sum(self.examination * attraction * value, axis=1)
        return clicked, rewards.sum(axis=1), expected

    def _record(self, users: np.ndarray, slates: np.ndarray, clicked: np.ndarray) -> None:
        positions = self._lengths[users, None] + np.arange(self.slate_size)
        self._token_items[users[:, None], positions] = slates
        self._token_feedback[users[:, None], positions] = np.where(clicked, CLICK, SKIP)
        self._lengths[users] += self.slate_size
        self._shown[users[:, None], slates] = True
        self._remaining[users] -= self.slate_size
        self.step_index[users] += 1
        any_click = clicked.any(axis=1)
        self.slates_without_click[users] = np.where(
            any_click, 0, self.slates_without_click[users] + 1
        )
        if self.patience is not None:
            self.user_quit[users] = self.slates_without_click[users] >= self.patience

    def _finished(self, users: np.ndarray) -> np.ndarray:
        return (
            (self.step_index[users] >= self.rounds)
            | self.user_quit[users]
            | (self._remaining[users] < self.slate_size)
        )

    def _check_slates(self, users: np.ndarray, slates: np.ndarray) -> None:
        bad_range = (slates < 0) | (slates >= self.n_items)
        if bad_range.any():
            user = int(users[np.flatnonzero(bad_range.any(axis=1))[0]])
            raise ValueError(f"user {user}: slate items must lie in [0, {self.n_items})")
        ordered = np.sort(slates, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if repeated.any():
            user = int(users[np.flatnonzero(repeated)[0]])
            raise ValueError(f"user {user}: slate items must be distinct")
        shown = self._shown[users[:, None], slates].any(axis=1)
        if shown.any():
            user = int(users[np.flatnonzero(shown)[0]])
            raise ValueError(f"user {user}: slate repeats items already shown to the user")
        outside = ~self._allowed[users[:, None], slates].all(axis=1)
        if outside.any():
            user = int(users[np.flatnonzero(outside)[0]])
            task = self.tasks[int(self.task_index[user])].task_id
            raise ValueError(f"user {user}: slate items are outside the items of task {task}")

    def _observations(self) -> Observation:
        tokens = self.max_tokens
        start = np.maximum(self._lengths - tokens, 0)
        length = np.minimum(self._lengths, tokens)
        items = self._token_items[:, :tokens].copy()
        feedback = self._token_feedback[:, :tokens].copy()
        # Sessions longer than max_tokens keep their last tokens.
        long = np.flatnonzero(start > 0)
        if long.size:
            index = start[long, None] + np.arange(tokens)
            items[long] = np.take_along_axis(self._token_items[long], index, axis=1)
            feedback[long] = np.take_along_axis(self._token_feedback[long], index, axis=1)
        valid = np.arange(tokens) < length[:, None]
        return {
            "items": np.where(valid, items, self.n_items),
            "feedback": np.where(valid, feedback, PAD_FEEDBACK),
            "length": length.astype(np.int64),
        }
