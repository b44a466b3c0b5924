"""Meta-train the agent on simulated tasks of training users.

Stage 1 starts the policy from the training users' log. The item bias takes
their log-popularity, and a ridge head takes PureSVD factors of their log,
with its size and penalty chosen on validation episodes. With
``pretrain.epochs > 0`` the main job's supervised pre-training follows (0 by
default in simulation). Stage 2 is meta-RL: each episode of a batch is a
task drawn from the training tasks and played in a
:class:`SimulatedUserEnv`, so the policy learns to adapt within an episode
to whatever user it meets. Its objective is ``config.rl.objective``:
fitting the users' clicks (:mod:`metarec.meta.clicks`, the default here) or
REINFORCE (:mod:`metarec.meta.reinforce`). Every
model-selection decision (best epoch, best iteration) is taken on the
validation tasks' simulated episodes, never on test tasks.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from metarec.agents.agent import MetaRLAgent
from metarec.agents.policy import SlatePolicy
from metarec.config import AdaptConfig
from metarec.errors import ConfigError
from metarec.meta.clicks import meta_train
from metarec.meta.pretrain import pretrain
from metarec.meta.sampling import SessionSampler, item_neighbors
from metarec.meta.trainer import resolve_device, seed_everything
from metarec.progress import Reporter, SilentReporter
from metarec.simulation.config import SimulationConfig
from metarec.simulation.embeddings import ItemEmbeddings, fit_log_embeddings
from metarec.simulation.policies import RecommenderPolicy
from metarec.simulation.runner import run_episodes
from metarec.simulation.world import EnvFactory, SimulationWorld
from metarec.tasks.task import Task

logger = logging.getLogger(__name__)

RIDGE_SCALE = 10.0
"""Starting weight of the ridge scores next to the logits, so that they steer the ranking."""
VALIDATION_SEED = 10_000
"""First seed of the validation episodes; test episodes use the experiment seed instead."""


@dataclass
class SimulationTraining:
    """The trained agent, a copy of its pre-trained network, and per-stage curves.

    ``pretrained`` is the network after stage 1, the common starting point
    that the non-meta DQN baseline also starts from.
    """

    agent: MetaRLAgent
    pretrained: SlatePolicy
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def validation_scorer(
    valid_envs: EnvFactory,
    train_envs: EnvFactory | None = None,
    trials: int = 1,
    seed: int = VALIDATION_SEED,
) -> Callable[[SlatePolicy], dict[str, float]]:
    """Return a function that scores a policy by its mean return on validation episodes.

    Each task plays ``trials`` episodes, with seeds ``seed``, ``seed + 1``, ...
    (the seeds the baselines are tuned on). With ``train_envs`` the record
    also contains ``train_return``, the mean return on those training tasks,
    so curves show any gap between the two.
    """

    def mean_return(agent: RecommenderPolicy, envs: EnvFactory) -> float:
        returns = [run_episodes(agent, envs, seed=seed + t).mean_return for t in range(trials)]
        return float(np.mean(returns))

    def score(policy: SlatePolicy) -> dict[str, float]:
        agent = RecommenderPolicy(MetaRLAgent(policy, AdaptConfig(steps=0)))
        record = {"score": mean_return(agent, valid_envs)}
        if train_envs is not None:
            record["train_return"] = mean_return(agent, train_envs)
        return record

    return score


def train_simulation_agent(
    world: SimulationWorld,
    config: SimulationConfig,
    *,
    train_users: np.ndarray | None = None,
    train_tasks: Sequence[Task] | None = None,
    valid_tasks: Sequence[Task] | None = None,
    pretrained: SlatePolicy | None = None,
    track_train_tasks: int = 0,
    reporter: Reporter | None = None,
) -> SimulationTraining:
    """Start the agent from the training users' log, then meta-train it in simulation.

    ``train_users`` limits the logged users learnt from (default: the
    world's training users), ``train_tasks`` the tasks of meta-RL (default:
    the world's training tasks), and ``valid_tasks`` the tasks that select
    the best weights (default: the world's validation tasks). A given
    ``pretrained`` network skips stage 1 (its weights are copied), and
    ``track_train_tasks`` adds the return on that many training tasks to
    every validation record.
    """
    reporter = reporter or SilentReporter()
    if config.model.max_tokens < config.episode_tokens:
        logger.warning(
            "model.max_tokens=%d is below the %d tokens a full episode reaches; the agent "
            "forgets the oldest tokens late in an episode",
            config.model.max_tokens,
            config.episode_tokens,
        )
    seed_everything(config.seed)
    device = resolve_device(config.device)
    users = world.split.train if train_users is None else np.asarray(train_users)
    train_tasks = world.tasks["train"] if train_tasks is None else list(train_tasks)
    valid_tasks = world.tasks["valid"] if valid_tasks is None else list(valid_tasks)
    tracked = (
        world.envs(train_tasks[:track_train_tasks], config.episode, config.model.max_tokens)
        if track_train_tasks
        else None
    )
    validate = validation_scorer(
        world.envs(valid_tasks, config.episode, config.model.max_tokens),
        tracked,
        trials=config.validation_trials,
    )
    if pretrained is not None:
        policy = copy.deepcopy(pretrained).to(device)
        history: dict[str, list[dict[str, float]]] = {}
    else:
        policy, history = _pretrain(world, config, users, validate, device, reporter)
    pretrained = copy.deepcopy(policy)

    make_env = world.envs(train_tasks, config.episode, config.model.max_tokens)
    envs = [make_env() for _ in range(config.rl.batch_size)]
    history["meta_rl"] = meta_train(policy, envs, config.rl, validate, config.seed, reporter)
    return SimulationTraining(MetaRLAgent(policy, AdaptConfig(steps=0)), pretrained, history)


def _starting_policy(
    world: SimulationWorld,
    config: SimulationConfig,
    users: np.ndarray,
    validate: Callable[[SlatePolicy], dict[str, float]],
    device: torch.device,
) -> tuple[SlatePolicy, list[dict[str, float]]]:
    """Build the untrained policy; choose a ridge head's starting point on validation.

    The item bias starts at the training users' log-popularity. A ridge head
    starts from PureSVD factors of the training users' log, and its size and
    penalty are chosen from ``baselines.dims`` x ``baselines.ridges``, the
    grid and validation episodes on which epsilon-greedy is tuned. Returns
    the policy and one validation record per candidate.
    """
    counts = np.asarray(world.log.to_csr(users).sum(axis=0)).ravel()
    model = config.policy_model()
    if not model.ridge_head:
        policy = SlatePolicy(world.log.n_items, model).to(device)
        policy.init_output_bias(counts)
        return policy, []
    best: tuple[float, SlatePolicy] | None = None
    records = []
    for dim in config.baselines.dims:
        embeddings = _log_embeddings(world, users, dim, config.seed)
        for penalty in config.baselines.ridges:
            policy = SlatePolicy(world.log.n_items, model.model_copy(update={"ridge_dim": dim}))
            policy.init_output_bias(counts)
            assert policy.ridge is not None
            policy.ridge.initialise(embeddings.vectors, embeddings.prior_mean, penalty, RIDGE_SCALE)
            policy.to(device)
            record = {"ridge_dim": float(dim), "penalty": penalty, **validate(policy)}
            records.append(record)
            if best is None or record["score"] > best[0]:
                best = (record["score"], policy)
    assert best is not None
    logger.info("agent: ridge head starts from %s", max(records, key=lambda r: r["score"]))
    return best[1], records


def _log_embeddings(
    world: SimulationWorld, users: np.ndarray, dim: int, seed: int
) -> ItemEmbeddings:
    try:
        return fit_log_embeddings(world.log, users, dim, seed=seed)
    except ValueError as error:
        raise ConfigError(
            f"the ridge head's starting size {dim} (from baselines.dims) does not fit the "
            f"training log ({error}); pass smaller sizes with --set 'baselines.dims=[8]'"
        ) from None


def _pretrain(
    world: SimulationWorld,
    config: SimulationConfig,
    users: np.ndarray,
    validate: Callable[[SlatePolicy], dict[str, float]],
    device: torch.device,
    reporter: Reporter,
) -> tuple[SlatePolicy, dict[str, list[dict[str, float]]]]:
    log = world.log
    train_matrix = log.to_csr(users)
    counts = np.asarray(train_matrix.sum(axis=0)).ravel()
    policy, starts = _starting_policy(world, config, users, validate, device)
    sampler = SessionSampler(
        log,
        users,
        counts,
        max(config.episode.max_shots, 1),
        config.pretrain.feedback_fraction,
        config.episode.rounds,
        config.episode.slate_size,
        neighbors=item_neighbors(train_matrix),
    )
    rng = np.random.default_rng(config.seed)
    history = {"pretrain": pretrain(policy, sampler, config.pretrain, validate, rng, reporter)}
    if starts:
        history["ridge_start"] = starts
    return policy, history
