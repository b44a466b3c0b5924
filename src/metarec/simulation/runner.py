"""Play simulated episodes with a policy and record rewards per task and step."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from metarec.envs.simulated import SimulatedUserEnv
from metarec.errors import ConfigError
from metarec.simulation.policies import SimulationPolicy

logger = logging.getLogger(__name__)

EnvSource = Callable[[], SimulatedUserEnv] | Sequence[SimulatedUserEnv]


@dataclass(frozen=True)
class EpisodeResults:
    """Per-task, per-step outcomes of one policy; row ``n`` is task ``tasks[n]``.

    After an episode ends (all rounds, a quit, or no items left) its later
    steps have reward 0 and ``active`` False. So ``rewards.sum(axis=1)`` is the
    episode return, and a column mean is the mean reward at that step with
    users who left counted as 0.
    """

    policy: str
    tasks: np.ndarray
    seed: int
    rewards: np.ndarray
    expected_rewards: np.ndarray
    clicks: np.ndarray
    active: np.ndarray
    quit: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """Return the episode return of each task."""
        return self.rewards.sum(axis=1)

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def lengths(self) -> np.ndarray:
        """Return the number of slates shown to each user."""
        return self.active.sum(axis=1)


def average_episodes(runs: Sequence[EpisodeResults]) -> EpisodeResults:
    """Return the mean over ``runs`` (episodes of the same tasks), one row per task.

    Each run plays every task once, with its own seed. The mean keeps the
    meaning of every field in expectation: rewards and clicks become mean
    values per step, ``active`` the share of episodes still running at a
    step, and ``quit`` the share that ended by the user leaving. Figures per
    user then describe the user's expected episode rather than one draw of
    the click noise. ``seed`` is the first run's, and a single run comes
    back as it is.
    """
    if not runs:
        raise ConfigError("average_episodes got no runs; pass at least one run")
    first = runs[0]
    if len(runs) == 1:
        return first
    for run in runs[1:]:
        if run.policy != first.policy or not np.array_equal(run.tasks, first.tasks):
            raise ConfigError(
                f"invalid runs to average: policy {run.policy!r} next to {first.policy!r}, or "
                "other tasks; pass runs of one policy on the same tasks"
            )

    def mean(field: str) -> np.ndarray:
        return np.stack([getattr(run, field) for run in runs]).mean(axis=0, dtype=np.float64)

    return EpisodeResults(
        first.policy,
        first.tasks,
        first.seed,
        mean("rewards"),
        mean("expected_rewards"),
        mean("clicks"),
        mean("active"),
        mean("quit"),
    )


def episode_seed(seed: int, task: int) -> int:
    """Return the reset seed of a task's episode; it depends only on ``seed`` and ``task``."""
    return int(np.random.SeedSequence([seed, task]).generate_state(1)[0])


def run_episodes(
    policy: SimulationPolicy,
    envs: EnvSource,
    tasks: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> EpisodeResults:
    """Play one episode per task with ``policy`` and return what happened.

    ``envs`` is either a function that builds an environment (``batch_size``
    of them are built and reused) or a sequence of environments that play
    ``len(envs)`` tasks at a time. ``tasks`` are indices into the
    environments' task list (all of them when ``None``). Task ``k`` is reset
    with ``episode_seed(seed, k)``, so every policy run with the same seed
    meets the same users with the same random draws.
    """
    if isinstance(envs, Sequence):
        workers = list(envs)
    else:
        workers = [envs() for _ in range(max(batch_size, 1))]
    if not workers:
        raise ConfigError("run_episodes needs at least one environment; got an empty sequence")
    task_indices = np.arange(len(workers[0].tasks)) if tasks is None else np.asarray(tasks)
    rounds = workers[0].rounds
    shape = (task_indices.shape[0], rounds)
    rewards, expected = np.zeros(shape), np.zeros(shape)
    clicks = np.zeros(shape, dtype=np.int64)
    active = np.zeros(shape, dtype=bool)
    quit_flags = np.zeros(task_indices.shape[0], dtype=bool)
    for start in range(0, task_indices.shape[0], len(workers)):
        rows = np.arange(start, min(start + len(workers), task_indices.shape[0]))
        batch = workers[: rows.shape[0]]
        for env, row in zip(batch, rows, strict=True):
            task = int(task_indices[row])
            env.reset(seed=episode_seed(seed, task), options={"task": task})
        _play_batch(policy, batch, rows, (rewards, expected, clicks, active, quit_flags))
    logger.debug("policy %s played %d episodes", policy.name, task_indices.shape[0])
    return EpisodeResults(
        policy.name, task_indices, seed, rewards, expected, clicks, active, quit_flags
    )


def _play_batch(
    policy: SimulationPolicy,
    batch: list[SimulatedUserEnv],
    rows: np.ndarray,
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    rewards, expected, clicks, active, quit_flags = outputs
    playing = [i for i, env in enumerate(batch) if not env.finished]
    while playing:
        slates = policy.act([batch[i] for i in playing])
        still_playing = []
        for slate, i in zip(slates, playing, strict=True):
            env, row = batch[i], rows[i]
            step = env.step_index
            _, reward, terminated, _, info = env.step(slate)
            rewards[row, step] = reward
            expected[row, step] = info["expected_reward"]
            clicks[row, step] = int(np.count_nonzero(info["clicked"]))
            active[row, step] = True
            quit_flags[row] = info["quit"]
            if not terminated:
                still_playing.append(i)
        playing = still_playing
