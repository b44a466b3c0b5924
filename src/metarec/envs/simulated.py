"""Simulated users who respond to any slate, drawn from a response model and a set of tasks.

One episode is one task (a user with a hidden preference vector). The session
starts with the task's history tokens. Each step the agent shows a slate, the
user examines positions by the position bias and clicks examined items by
their attraction at the current step's preference (``Task.preference_at``).

Quit mechanism: the user leaves after ``patience`` consecutive slates without
a click (``patience=None`` keeps every user for all rounds). The step that
makes the user leave is the last one: it returns ``terminated=True`` and
``info["quit"] = True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarec.envs.episode import (
    PAD_FEEDBACK,
    EpisodeDraws,
    allowed_items,
    check_settings,
    check_tasks,
    draw_episode,
    padded_tokens,
)
from metarec.envs.response import ResponseModel
from metarec.envs.rewards import RewardModel
from metarec.errors import ConfigError
from metarec.session import Session
from metarec.tasks.task import Task

DEFAULT_PATIENCE = 3


def make_reward_model(reward: str | RewardModel, n_items: int) -> RewardModel:
    """Return ``reward`` itself, or the synthetic reward model of that type (seed 0)."""
    if isinstance(reward, RewardModel):
        if reward.purchase_probability.shape[0] != n_items:
            raise ConfigError(
                f"the reward model covers {reward.purchase_probability.shape[0]} items, "
                f"but the catalog has {n_items}; build it with RewardModel.synthetic"
            )
        return reward
    return RewardModel.synthetic(reward, n_items)


def observation_space(n_items: int, max_tokens: int) -> spaces.Dict:
    """Return the observation space shared with the log-replay environment."""
    return spaces.Dict(
        {
            "items": spaces.Box(0, n_items, shape=(max_tokens,), dtype=np.int64),
            "feedback": spaces.Box(0, PAD_FEEDBACK, shape=(max_tokens,), dtype=np.int64),
            "length": spaces.Box(0, max_tokens, shape=(), dtype=np.int64),
        }
    )


class SimulatedUserEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A simulated user per episode, who responds to slates with clicks from a response model.

    Observation: the last ``max_tokens`` session tokens as ``items`` and
    ``feedback`` (history 0, click 1, skip 2), left-aligned and padded with
    item ``n_items`` and feedback 3, plus ``length`` (as ``LoggedUserEnv``).
    Action: ``slate_size`` distinct item indices, none shown before, all in
    the task's allowed items. Reward: the sum over the slate of the reward
    model's value of each click (clicks, ratings, purchases or revenue).
    The episode terminates after ``rounds`` slates, when the user quits, or
    when fewer than ``slate_size`` allowed items are left to show.

    ``reset(seed=..., options={"task": k})`` plays ``tasks[k]``; without the
    option a task is drawn uniformly with the environment's generator.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium declares it as an instance attribute)

    def __init__(
        self,
        response: ResponseModel,
        tasks: Sequence[Task],
        n_items: int | None = None,
        slate_size: int = 10,
        rounds: int = 20,
        max_tokens: int = 160,
        reward: str | RewardModel = "click",
        patience: int | None = DEFAULT_PATIENCE,
    ) -> None:
        n_items = response.n_items if n_items is None else n_items
        if n_items != response.n_items:
            raise ConfigError(
                f"n_items={n_items} does not match the response model's {response.n_items} items"
            )
        check_settings(slate_size, rounds, max_tokens, patience)
        check_tasks(tasks, response, n_items, slate_size)
        self.response = response
        self.tasks = list(tasks)
        self.n_items = n_items
        self.slate_size = slate_size
        self.rounds = rounds
        self.max_tokens = max_tokens
        self.patience = patience
        self.reward_model = make_reward_model(reward, n_items)
        self.examination = response.examination(slate_size)
        self.observation_space = observation_space(n_items, max_tokens)  # type: ignore[assignment]
        self.action_space = spaces.MultiDiscrete(np.full(slate_size, n_items))
        self.task_index = 0
        self.task = self.tasks[0]
        self._start(draw_episode(np.random.default_rng(0), rounds, slate_size, n_items))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "task" in options:
            index = int(options["task"])
            if not 0 <= index < len(self.tasks):
                raise ValueError(f"task index {index} is outside [0, {len(self.tasks)})")
        else:
            index = int(self.np_random.integers(len(self.tasks)))
        self.task_index = index
        self.task = self.tasks[index]
        draws = draw_episode(self.np_random, self.rounds, self.slate_size, self.n_items)
        self._start(draws)
        return self._observation(), {"task": index, "task_id": self.task.task_id}

    def _start(self, draws: EpisodeDraws) -> None:
        self._draws = draws
        self.session = Session.from_history(self.task.history)
        self._allowed = allowed_items(self.task, self.n_items)
        self._shown = np.zeros(self.n_items, dtype=bool)
        self._shown[self.session.items] = True
        self._remaining = int(np.count_nonzero(self._allowed & ~self._shown))
        self.step_index = 0
        self.slates_without_click = 0
        self.user_quit = False

    @property
    def finished(self) -> bool:
        """Whether the episode has ended: all rounds shown, the user quit, or too few items left."""
        exhausted = self._remaining < self.slate_size
        return self.step_index >= self.rounds or self.user_quit or exhausted

    def allowed_mask(self) -> np.ndarray:
        """Return the bool ``(n_items,)`` mask of items that may be shown now."""
        return self._allowed & ~self._shown

    def attraction(self) -> np.ndarray:
        """Return the true click probability of every examined item now (for oracles only)."""
        return self.response.attraction(self.task.preference_at(self.step_index))

    def item_values(self) -> np.ndarray:
        """Return the expected reward of every item if examined now (for oracles only)."""
        attraction = self.attraction()
        return attraction * self.reward_model.click_value(attraction, np.arange(self.n_items))

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self.finished:
            raise RuntimeError("the episode has ended; call reset() before step()")
        slate = np.asarray(action, dtype=np.int64).reshape(-1)
        self._check_slate(slate)
        preference = self.task.preference_at(self.step_index)
        attraction = self.response.item_attraction(preference[None], slate[None])[0]
        examined = self._draws.exam[self.step_index] < self.examination
        clicked = examined & (self._draws.click[slate] < attraction)
        rewards = self.reward_model.realised(
            clicked, attraction, slate, self._draws.purchase[slate]
        )
        value = self.reward_model.click_value(attraction, slate)
        expected = float(np.sum(self.examination * attraction * value))

        self.session = self.session.with_slate(slate, clicked)
        self._shown[slate] = True
        self._remaining -= self.slate_size
        self.step_index += 1
        self.slates_without_click = 0 if clicked.any() else self.slates_without_click + 1
        self.user_quit = self.patience is not None and self.slates_without_click >= self.patience
        info = {"clicked": clicked, "quit": self.user_quit, "expected_reward": expected}
        return self._observation(), float(rewards.sum()), self.finished, False, info

    def _check_slate(self, slate: np.ndarray) -> None:
        if slate.shape[0] != self.slate_size:
            raise ValueError(f"a slate must hold {self.slate_size} items; got {slate.shape[0]}")
        if slate.min() < 0 or slate.max() >= self.n_items:
            raise ValueError(f"slate items must lie in [0, {self.n_items}); got {slate}")
        if np.unique(slate).shape[0] != slate.shape[0]:
            raise ValueError(f"slate items must be distinct; got {slate}")
        repeated = slate[self._shown[slate]]
        if repeated.size:
            raise ValueError(f"slate repeats items already shown to the user: {repeated}")
        outside = slate[~self._allowed[slate]]
        if outside.size:
            raise ValueError(
                f"slate items {outside} are outside the items of task {self.task.task_id}"
            )

    def _observation(self) -> dict[str, np.ndarray]:
        return padded_tokens(
            self.session.items, self.session.feedback, self.max_tokens, self.n_items
        )


gym.register(id="metarec/SimulatedUser-v0", entry_point=SimulatedUserEnv)  # type: ignore[arg-type]
