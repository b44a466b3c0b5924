"""Meta-train the agent on simulated tasks of training users.

Stage 1 is the main job's pre-training on the training users' logged
histories. Stage 2 is meta-RL: each episode of a batch is a task drawn from
the training tasks and played in a :class:`SimulatedUserEnv`, so the policy
learns to adapt within an episode to whatever user it meets. Every
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
from metarec.meta.pretrain import pretrain
from metarec.meta.reinforce import meta_rl
from metarec.meta.sampling import SessionSampler, item_neighbors
from metarec.meta.trainer import resolve_device, seed_everything
from metarec.progress import Reporter, SilentReporter
from metarec.simulation.config import SimulationConfig
from metarec.simulation.embeddings import fit_log_embeddings
from metarec.simulation.policies import RecommenderPolicy
from metarec.simulation.runner import run_episodes
from metarec.simulation.world import EnvFactory, SimulationWorld
from metarec.tasks.task import Task

logger = logging.getLogger(__name__)

RIDGE_PENALTY = 30.0
"""Starting ridge penalty of the ridge head, in units of observed items (mean squared norm 1)."""
RIDGE_SCALE = 10.0
"""Starting weight of the ridge scores next to the logits, so that they steer the ranking."""
VALIDATION_SEED = 10_000
"""Seed of the validation episodes; test episodes use the experiment seed instead."""


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
    valid_envs: EnvFactory, train_envs: EnvFactory | None = None, seed: int = VALIDATION_SEED
) -> Callable[[SlatePolicy], dict[str, float]]:
    """Return a function that scores a policy by its mean return on validation episodes.

    With ``train_envs`` the record also contains ``train_return``, the mean
    return on those training tasks, so curves show any gap between the two.
    """

    def score(policy: SlatePolicy) -> dict[str, float]:
        agent = RecommenderPolicy(MetaRLAgent(policy, AdaptConfig(steps=0)))
        record = {"score": run_episodes(agent, valid_envs, seed=seed).mean_return}
        if train_envs is not None:
            record["train_return"] = run_episodes(agent, train_envs, seed=seed).mean_return
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
    """Pre-train on the training users' log, then meta-train with REINFORCE in simulation.

    ``train_users`` limits the logged users learnt from (default: the
    world's training users), ``train_tasks`` the tasks of meta-RL (default:
    the world's training tasks), and ``valid_tasks`` the tasks that select
    the best weights (default: the world's validation tasks). A given
    ``pretrained`` network skips stage 1 (its weights are copied), and
    ``track_train_tasks`` adds the return on that many training tasks to
    every validation record.
    """
    reporter = reporter or SilentReporter()
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
        world.envs(valid_tasks, config.episode, config.model.max_tokens), tracked
    )
    if pretrained is not None:
        policy = copy.deepcopy(pretrained).to(device)
        history: dict[str, list[dict[str, float]]] = {}
    else:
        policy, history = _pretrain(world, config, users, validate, device, reporter)
    pretrained = copy.deepcopy(policy)

    make_env = world.envs(train_tasks, config.episode, config.model.max_tokens)
    envs = [make_env() for _ in range(config.rl.batch_size)]
    history["meta_rl"] = meta_rl(policy, envs, config.rl, validate, config.seed, reporter)
    return SimulationTraining(MetaRLAgent(policy, AdaptConfig(steps=0)), pretrained, history)


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
    policy = SlatePolicy(log.n_items, config.model).to(device)
    policy.init_output_bias(counts)
    if policy.ridge is not None:
        embeddings = fit_log_embeddings(log, users, config.model.ridge_dim, seed=config.seed)
        policy.ridge.initialise(
            embeddings.vectors, embeddings.prior_mean, RIDGE_PENALTY, RIDGE_SCALE
        )
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
    return policy, history
