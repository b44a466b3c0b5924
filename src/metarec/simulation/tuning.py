"""Choose the simulation baselines' hyper-parameters on validation users' episodes.

Every candidate plays one episode per validation task (``trials`` times, with
different seeds) in the environments that ``valid_envs`` builds, and the
candidate with the highest mean episode return wins. Every candidate meets
the same users with the same random draws (common random numbers, see
:func:`metarec.simulation.runner.run_episodes`). Test users take no part in
the choice.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from metarec.agents.policy import SlatePolicy
from metarec.baselines.popularity import Popularity
from metarec.config import ModelConfig
from metarec.data.interactions import InteractionLog
from metarec.envs.simulated import SimulatedUserEnv
from metarec.errors import ConfigError
from metarec.progress import Reporter
from metarec.recommender import Recommender
from metarec.simulation.bandits import EpsilonGreedy, LinUCB, ThompsonSampling
from metarec.simulation.dqn import DQNConfig, train_dqn
from metarec.simulation.embeddings import ItemEmbeddings, fit_log_embeddings
from metarec.simulation.policies import RecommenderPolicy, SimulationPolicy
from metarec.simulation.runner import run_episodes

logger = logging.getLogger(__name__)

EnvFactory = Callable[[], SimulatedUserEnv]
Params = dict[str, float]


@dataclass(frozen=True)
class BanditGrid:
    """Candidate values of each bandit's hyper-parameters, tried in every combination.

    ``dims`` are PureSVD embedding sizes, ``ridges`` the EpsilonGreedy ridge
    penalty, ``prior_strengths`` the weight of the population prior of
    Thompson sampling and LinUCB, ``noises`` the Thompson sampling noise
    scale and ``alphas`` the LinUCB confidence multiplier.
    """

    dims: tuple[int, ...] = (16, 32)
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1)
    ridges: tuple[float, ...] = (3.0, 10.0, 30.0, 100.0)
    prior_strengths: tuple[float, ...] = (3.0, 10.0, 30.0, 100.0)
    noises: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    alphas: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)

    def __post_init__(self) -> None:
        for name in ("dims", "epsilons", "ridges", "prior_strengths", "noises", "alphas"):
            if not getattr(self, name):
                raise ConfigError(f"BanditGrid.{name} is empty; give at least one value")


@dataclass(frozen=True)
class DQNTuning:
    """Training environments, starting network and candidate settings of the DQN baseline.

    ``train_envs`` builds environments over training users' tasks. Each
    config in ``configs`` is trained once and validated every
    ``config.eval_every`` steps (its best checkpoint counts). The default
    configs are a gentle fine-tuning of a pre-trained ``init`` (small
    learning rate, little exploration) and a faster one, which also suits
    a network trained from scratch.
    """

    train_envs: EnvFactory
    init: SlatePolicy | ModelConfig
    configs: tuple[DQNConfig, ...] = (
        DQNConfig(lr=3e-5, epsilon_start=0.1, eval_every=50),
        DQNConfig(lr=1e-3, epsilon_start=0.5, eval_every=50),
    )


@dataclass
class TunedBaselines:
    """The tuned baselines by name, their chosen hyper-parameters and validation returns."""

    models: dict[str, Recommender] = field(default_factory=dict)
    params: dict[str, Params] = field(default_factory=dict)
    validation_return: dict[str, float] = field(default_factory=dict)


def as_policy(recommender: Recommender) -> SimulationPolicy:
    """Return the simulation policy of a recommender.

    :class:`EpsilonGreedy` acts itself, so that exploration stays inside
    each task's allowed items. Any other recommender ranks through
    :class:`RecommenderPolicy`.
    """
    if isinstance(recommender, EpsilonGreedy):
        return recommender
    return RecommenderPolicy(recommender)


def validation_return(
    recommender: Recommender, valid_envs: EnvFactory, seed: int, trials: int = 1
) -> float:
    """Return the mean episode return over the validation tasks and ``trials`` seeds."""
    policy = as_policy(recommender)
    returns = [
        run_episodes(policy, valid_envs, seed=seed + trial).mean_return for trial in range(trials)
    ]
    return float(np.mean(returns))


def tune_simulation_baselines(
    log: InteractionLog,
    train_users: np.ndarray,
    valid_envs: EnvFactory,
    *,
    grid: BanditGrid | None = None,
    dqn: DQNTuning | None = None,
    seed: int = 0,
    trials: int = 1,
    episode_seed: int | None = None,
    reporter: Reporter | None = None,
) -> TunedBaselines:
    """Fit Popularity and the bandits on ``train_users`` of ``log`` and tune them on validation.

    Item embeddings and popularity counts come from the training users'
    interactions only. Validation episodes use seeds ``episode_seed``,
    ``episode_seed + 1``, ... (default: ``seed``). With ``dqn``, a slate DQN
    is trained for each of its configs and the best one on validation joins
    the result.
    """
    grid = grid or BanditGrid()
    if trials < 1:
        raise ConfigError(f"trials must be at least 1; got {trials}")
    result = TunedBaselines()

    first_seed = seed if episode_seed is None else episode_seed

    def evaluate(model: Recommender) -> float:
        return validation_return(model, valid_envs, first_seed, trials)

    popularity = Popularity().fit(log.to_csr(np.asarray(train_users)))
    _record(result, "Popularity", popularity, {}, evaluate(popularity))
    embeddings = {dim: fit_log_embeddings(log, train_users, dim, seed=seed) for dim in grid.dims}
    for name, candidates in _bandit_candidates(grid, embeddings, seed).items():
        model, params, score = _select(name, candidates, evaluate)
        _record(result, name, model, params, score)
    if dqn is not None:
        model, params, score = _tune_dqn(dqn, evaluate, seed, reporter)
        _record(result, "DQN", model, params, score)
    return result


def _bandit_candidates(
    grid: BanditGrid, embeddings: dict[int, ItemEmbeddings], seed: int
) -> dict[str, Iterable[tuple[Params, Callable[[], Recommender]]]]:
    """Return, per bandit, lazily built ``(params, build)`` pairs over the whole grid."""

    def greedy(dim: int, epsilon: float, ridge: float) -> Callable[[], Recommender]:
        return lambda: EpsilonGreedy(embeddings[dim], epsilon=epsilon, ridge=ridge, seed=seed)

    def thompson(dim: int, strength: float, noise: float) -> Callable[[], Recommender]:
        return lambda: ThompsonSampling(
            embeddings[dim], prior_strength=strength, noise=noise, seed=seed
        )

    def ucb(dim: int, strength: float, alpha: float) -> Callable[[], Recommender]:
        return lambda: LinUCB(embeddings[dim], alpha=alpha, prior_strength=strength, seed=seed)

    return {
        "EpsilonGreedy": (
            ({"dim": dim, "epsilon": epsilon, "ridge": ridge}, greedy(dim, epsilon, ridge))
            for dim, epsilon, ridge in itertools.product(grid.dims, grid.epsilons, grid.ridges)
        ),
        "ThompsonSampling": (
            (
                {"dim": dim, "prior_strength": strength, "noise": noise},
                thompson(dim, strength, noise),
            )
            for dim, strength, noise in itertools.product(
                grid.dims, grid.prior_strengths, grid.noises
            )
        ),
        "LinUCB": (
            ({"dim": dim, "prior_strength": strength, "alpha": alpha}, ucb(dim, strength, alpha))
            for dim, strength, alpha in itertools.product(
                grid.dims, grid.prior_strengths, grid.alphas
            )
        ),
    }


def _select(
    name: str,
    candidates: Iterable[tuple[Params, Callable[[], Recommender]]],
    evaluate: Callable[[Recommender], float],
) -> tuple[Recommender, Params, float]:
    best: tuple[Recommender, Params, float] | None = None
    for params, build in candidates:
        model = build()
        score = evaluate(model)
        logger.debug("%s %s: validation return %.4f", name, params, score)
        if best is None or score > best[2]:
            best = (model, params, score)
    if best is None:
        raise ConfigError(f"the {name} grid is empty; give at least one value")
    return best


def _tune_dqn(
    tuning: DQNTuning,
    evaluate: Callable[[Recommender], float],
    seed: int,
    reporter: Reporter | None,
) -> tuple[Recommender, Params, float]:
    if not tuning.configs:
        raise ConfigError("DQNTuning.configs is empty; give at least one DQNConfig")
    best: tuple[Recommender, Params, float] | None = None
    for index, config in enumerate(tuning.configs):
        trained = train_dqn(
            tuning.train_envs,
            tuning.init,
            config,
            seed + index,
            validate=evaluate,
            reporter=reporter,
        )
        # The kept weights are those of the best validation record, so its score is theirs.
        scores = [record["validation"] for record in trained.history]
        score = max(scores) if scores else evaluate(trained.recommender)
        params = {"lr": config.lr, "epsilon_start": config.epsilon_start, "steps": config.steps}
        logger.debug("DQN %s: validation return %.4f", params, score)
        if best is None or score > best[2]:
            best = (trained.recommender, params, score)
    assert best is not None
    return best


def _record(
    result: TunedBaselines, name: str, model: Recommender, params: Params, score: float
) -> None:
    result.models[name] = model
    result.params[name] = params
    result.validation_return[name] = score
    logger.info("%s: chose %s (validation return %.4f)", name, params, score)


def chosen_values(result: TunedBaselines) -> list[str]:
    """Return one line per baseline, ``name: key=value ... (validation return R)``."""
    lines = []
    for name, params in result.params.items():
        values = " ".join(f"{key}={value:g}" for key, value in params.items()) or "no parameters"
        lines.append(f"{name}: {values} (validation return {result.validation_return[name]:.3f})")
    return lines
