"""Log-replay environment: a logged user clicks the slate items they really chose.

One episode is one user task. The first K interactions are the history the
agent starts from, and the rest of the user's log is the set of items that
count as clicks. Each step the agent shows a slate of unseen items and is rewarded
with the number of clicks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarec.data.interactions import InteractionLog
from metarec.data.splits import FewShotTask
from metarec.session import FEEDBACK_TYPES, Session

if TYPE_CHECKING:
    from metarec.recommender import Recommender

PAD_FEEDBACK = FEEDBACK_TYPES


class LoggedUserEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Replays logged users as recommendation tasks.

    Observation: the last ``max_tokens`` tokens of the session as ``items``
    and ``feedback`` arrays (history 0, click 1, skip 2), left-aligned and
    padded with item ``n_items`` and feedback 3, plus ``length``.
    Action: ``slate_size`` distinct item indices not shown before.
    Reward: the number of slate items in the user's query set.
    The episode terminates after ``rounds`` slates or when no query item is left.

    ``reset(options={"user": u, "shots": k})`` picks the task; otherwise a
    user is drawn from ``users`` and K uniformly from ``shots_range``.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium declares it as an instance attribute)

    def __init__(
        self,
        log: InteractionLog,
        users: np.ndarray,
        shots_range: tuple[int, int] = (1, 20),
        slate_size: int = 10,
        rounds: int = 10,
        max_tokens: int = 160,
    ) -> None:
        lengths = log.user_lengths()[users]
        self.users = np.asarray(users)[lengths > shots_range[0]]
        if self.users.size == 0:
            raise ValueError(
                f"no user has more than {shots_range[0]} interactions; lower the shots range"
            )
        self.log = log
        self.shots_range = shots_range
        self.slate_size = slate_size
        self.rounds = rounds
        self.max_tokens = max_tokens
        n_items = log.n_items
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "items": spaces.Box(0, n_items, shape=(max_tokens,), dtype=np.int64),
                "feedback": spaces.Box(0, PAD_FEEDBACK, shape=(max_tokens,), dtype=np.int64),
                "length": spaces.Box(0, max_tokens, shape=(), dtype=np.int64),
            }
        )
        self.action_space = spaces.MultiDiscrete(np.full(slate_size, n_items))
        self.session = Session.from_history(np.zeros(0, dtype=np.int64))
        self._query: set[int] = set()
        self._remaining = 0
        self._round = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        user = int(options["user"]) if "user" in options else int(self.np_random.choice(self.users))
        sequence = self.log.user_items(user)
        if "shots" in options:
            shots = int(options["shots"])
        else:
            high = min(self.shots_range[1], sequence.shape[0] - 1)
            shots = int(self.np_random.integers(self.shots_range[0], high + 1))
        if not 1 <= shots < sequence.shape[0]:
            raise ValueError(
                f"shots={shots} leaves no query items for user {self.log.user_ids[user]} "
                f"with {sequence.shape[0]} interactions"
            )
        self.load_task(FewShotTask(user, sequence[:shots], sequence[shots:]))
        return self._observation(), {"user": user, "shots": shots}

    def load_task(self, task: FewShotTask) -> None:
        """Start an episode on an explicit support/query cut."""
        self.session = Session.from_history(task.support)
        self._query = set(task.query.tolist())
        self._remaining = len(self._query)
        self._round = 0

    def remaining_query(self) -> np.ndarray:
        """Return the query items not shown yet, in increasing index order."""
        return np.setdiff1d(
            np.fromiter(self._query, np.int64, len(self._query)), self.session.items
        )

    @property
    def finished(self) -> bool:
        """Return whether the episode has ended (all rounds shown or no query item left)."""
        return self._round >= self.rounds or self._remaining == 0

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        slate = np.asarray(action, dtype=np.int64).reshape(-1)
        self._check_slate(slate)
        clicked = np.fromiter((item in self._query for item in slate.tolist()), bool, slate.size)
        self.session = self.session.with_slate(slate, clicked)
        self._remaining -= int(clicked.sum())
        self._round += 1
        return self._observation(), float(clicked.sum()), self.finished, False, {"clicked": clicked}

    def _check_slate(self, slate: np.ndarray) -> None:
        if slate.shape[0] != self.slate_size:
            raise ValueError(f"a slate must hold {self.slate_size} items; got {slate.shape[0]}")
        if slate.min() < 0 or slate.max() >= self.log.n_items:
            raise ValueError(f"slate items must lie in [0, {self.log.n_items}); got {slate}")
        if np.unique(slate).shape[0] != slate.shape[0]:
            raise ValueError(f"slate items must be distinct; got {slate}")
        repeated = np.intersect1d(slate, self.session.shown())
        if repeated.size:
            raise ValueError(f"slate repeats items already shown to the user: {repeated}")

    def _observation(self) -> dict[str, np.ndarray]:
        items = self.session.items[-self.max_tokens :]
        feedback = self.session.feedback[-self.max_tokens :]
        padded_items = np.full(self.max_tokens, self.log.n_items, dtype=np.int64)
        padded_feedback = np.full(self.max_tokens, PAD_FEEDBACK, dtype=np.int64)
        padded_items[: items.shape[0]] = items
        padded_feedback[: feedback.shape[0]] = feedback
        return {
            "items": padded_items,
            "feedback": padded_feedback,
            "length": np.array(items.shape[0], dtype=np.int64),
        }


def run_interactive_episodes(
    recommender: Recommender,
    log: InteractionLog,
    tasks: Sequence[FewShotTask],
    rounds: int,
    slate_size: int,
) -> np.ndarray:
    """Play one episode per task with the recommender's top slates; return clicks per round."""
    envs = []
    for task in tasks:
        env = LoggedUserEnv(log, np.array([task.user]), (1, 1), slate_size, rounds)
        env.load_task(task)
        envs.append(env)
    clicks = np.zeros((len(tasks), rounds))
    active = list(range(len(tasks)))
    for round_index in range(rounds):
        if not active:
            break
        slates = recommender.recommend([envs[i].session for i in active], slate_size)
        still_active = []
        for row, i in enumerate(active):
            _, reward, terminated, _, _ = envs[i].step(slates[row])
            clicks[i, round_index] = reward
            if not terminated:
                still_active.append(i)
        active = still_active
    return clicks


gym.register(id="metarec/LoggedUser-v0", entry_point=LoggedUserEnv)  # type: ignore[arg-type]
