"""A simulation world: the log agents learn from, the response model, and tasks per split."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metarec.config import DataConfig
from metarec.data.dataset import load_dataset, looks_like_path
from metarec.data.download import DATASETS
from metarec.data.interactions import InteractionLog
from metarec.data.splits import UserSplit, split_users
from metarec.envs.fit_response import fit_response_model, response_fidelity
from metarec.envs.response import ResponseModel
from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import make_synthetic_world
from metarec.errors import ConfigError, DataError
from metarec.simulation.config import EpisodeConfig, ShiftConfig, SimulationConfig
from metarec.tasks.generator import user_tasks
from metarec.tasks.task import Task

logger = logging.getLogger(__name__)

SYNTHETIC = "synthetic"
SYNTHETIC_LOG_LENGTH = 30


@dataclass
class SimulationWorld:
    """Everything an experiment draws on.

    ``log`` contains every user's interactions. Agents and baselines learn only
    from the rows of ``split.train``. ``response`` is the hidden ground truth
    of every user, and ``tasks`` contains one task per user of each split.
    ``fidelity`` contains the response model's scores on held-out real
    interactions, or ``None`` for a synthetic world, whose model is exact.
    """

    name: str
    log: InteractionLog
    response: ResponseModel
    split: UserSplit
    tasks: dict[str, list[Task]]
    fidelity: dict[str, float] | None = None

    def envs(self, tasks: Sequence[Task], episode: EpisodeConfig, max_tokens: int) -> EnvFactory:
        """Return a function that builds one simulated environment over ``tasks``."""
        return EnvFactory(self.response, list(tasks), episode, max_tokens)


@dataclass(frozen=True)
class EnvFactory:
    """Builds identical simulated environments; a picklable stand-in for a lambda."""

    response: ResponseModel
    tasks: list[Task]
    episode: EpisodeConfig
    max_tokens: int

    def __call__(self) -> SimulatedUserEnv:
        return SimulatedUserEnv(
            self.response,
            self.tasks,
            slate_size=self.episode.slate_size,
            rounds=self.episode.rounds,
            max_tokens=self.max_tokens,
            reward=self.episode.reward,
            patience=self.episode.patience,
        )


def build_world(config: SimulationConfig, *, with_fidelity: bool = True) -> SimulationWorld:
    """Build the world ``config.world`` names, with tasks for training, validation and test."""
    if config.world.source == SYNTHETIC:
        log, response, name = _synthetic_parts(config)
        fidelity = None
    else:
        log = _load_log(config)
        name = log.name
        logger.info("fitting the response model on %d interactions", log.n_interactions)
        response = fit_response_model(
            log, dim=config.world.response_dim, epochs=config.world.response_epochs, seed=0
        )
        fidelity = None
    split = split_users(log)
    if with_fidelity and config.world.source != SYNTHETIC:
        logger.info("measuring the response model on held-out validation interactions")
        fidelity = response_fidelity(
            log,
            split.valid,
            seed=0,
            dim=config.world.response_dim,
            epochs=config.world.response_epochs,
        )
    rng = np.random.default_rng(config.seed)
    shots = (config.episode.min_shots, config.episode.max_shots)
    tasks = {
        part: user_tasks(log, response, getattr(split, part), shots, rng)
        for part in ("train", "valid", "test")
    }
    return SimulationWorld(name, log, response, split, tasks, fidelity)


def _load_log(config: SimulationConfig) -> InteractionLog:
    source = config.world.source
    try:
        log = load_dataset(DataConfig(dataset=source, data_dir=config.world.data_dir))
    except DataError as error:
        if source in DATASETS or looks_like_path(source):
            raise
        raise ConfigError(
            f"world '{source}' is neither '{SYNTHETIC}' nor a dataset found here ({error}); "
            f"pass --world {SYNTHETIC}, one of {sorted(DATASETS)}, or a dataset path"
        ) from None
    check_world_log(log, config)
    return log


def check_world_log(log: InteractionLog, config: SimulationConfig) -> None:
    """Raise ConfigError when the baselines' embedding sizes do not fit the catalog."""
    too_large = [dim for dim in config.baselines.dims if dim >= log.n_items]
    if too_large:
        raise ConfigError(
            f"baselines.dims {too_large} must be smaller than the {log.n_items} items of "
            f"the world; pass smaller sizes with --set 'baselines.dims=[8]'"
        )


def _synthetic_parts(config: SimulationConfig) -> tuple[InteractionLog, ResponseModel, str]:
    size = config.world.synthetic
    world = make_synthetic_world(
        size.n_users,
        size.n_items,
        size.n_topics,
        seed=config.seed,
        history_length=min(config.episode.max_shots, SYNTHETIC_LOG_LENGTH),
        log_length=SYNTHETIC_LOG_LENGTH,
    )
    check_world_log(world.log, config)
    return world.log, world.response, SYNTHETIC


def with_shift(
    tasks: Sequence[Task],
    targets: np.ndarray,
    shift: ShiftConfig,
    rng: np.random.Generator,
    fraction: float = 1.0,
) -> list[Task]:
    """Return copies of ``tasks`` whose preference moves to a random row of ``targets``.

    Each task is shifted with probability ``fraction``; the new preference is
    another user's, so the shift is as large as the gap between two users.
    Rows equal to the task's own preference are never drawn.
    """
    shifted = []
    for task in tasks:
        if rng.random() >= fraction:
            shifted.append(task)
            continue
        others = np.flatnonzero(np.any(targets != task.preference, axis=1))
        if not others.size:
            raise ConfigError(
                f"no preference other than task {task.task_id}'s own to switch to; "
                "pass targets from at least two distinct users"
            )
        target = targets[int(others[rng.integers(others.shape[0])])]
        shifted.append(
            dataclasses.replace(
                task,
                task_id=f"{task.task_id}-shift",
                drift_to=np.asarray(target, dtype=np.float64).copy(),
                drift_step=shift.step,
                drift_span=shift.span,
            )
        )
    return shifted
