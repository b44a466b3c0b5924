"""Run the meta-training stages in order and return a ready agent."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from metarec.agents.agent import MetaRLAgent
from metarec.agents.policy import SlatePolicy
from metarec.config import AdaptConfig, RunConfig
from metarec.data.interactions import InteractionLog
from metarec.data.splits import UserSplit
from metarec.envs.replay import LoggedUserEnv
from metarec.errors import ConfigError
from metarec.evaluation.selection import validation_score
from metarec.meta.clicks import meta_train
from metarec.meta.maml import fomaml
from metarec.meta.pretrain import pretrain
from metarec.meta.sampling import SessionSampler, item_neighbors
from metarec.progress import Reporter, SilentReporter

logger = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    """The trained agent and one list of records per stage (for curves and reports)."""

    agent: MetaRLAgent
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str) -> torch.device:
    """Return the torch device, or raise a ConfigError naming the device and the alternatives."""
    try:
        device = torch.device(name)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, ValueError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise ConfigError(
            f"device '{name}' is not usable here ({reason}); use cpu, or cuda:N on a CUDA machine"
        ) from None
    return device


def train_agent(
    log: InteractionLog,
    split: UserSplit,
    config: RunConfig,
    reporter: Reporter | None = None,
) -> TrainingResult:
    """Pre-train, meta-train with REINFORCE, and optionally with first-order MAML."""
    reporter = reporter or SilentReporter()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    policy = SlatePolicy(log.n_items, config.model).to(device)
    train_matrix = log.to_csr(split.train)
    counts = np.asarray(train_matrix.sum(axis=0)).ravel()
    policy.init_output_bias(counts)
    protocol = config.protocol
    sampler = SessionSampler(
        log,
        split.train,
        counts,
        config.pretrain.max_shots,
        config.pretrain.feedback_fraction,
        protocol.rounds,
        protocol.slate_size,
        neighbors=item_neighbors(train_matrix),
    )
    no_adapt = AdaptConfig(steps=0)

    def validate(candidate: SlatePolicy) -> dict[str, float]:
        return validation_score(MetaRLAgent(candidate, no_adapt), log, split.valid, protocol)

    rng = np.random.default_rng(config.seed)
    history = {"pretrain": pretrain(policy, sampler, config.pretrain, validate, rng, reporter)}
    envs = [
        LoggedUserEnv(
            log,
            split.train,
            (1, config.pretrain.max_shots),
            protocol.slate_size,
            protocol.rounds,
            config.model.max_tokens,
        )
        for _ in range(config.rl.batch_size)
    ]
    history["meta_rl"] = meta_train(policy, envs, config.rl, validate, config.seed, reporter)
    if config.adapt.steps > 0 and config.adapt.meta_iterations > 0:
        history["maml"] = fomaml(
            policy,
            sampler,
            config.adapt,
            config.rl.lr,
            lambda candidate: validation_score(
                MetaRLAgent(candidate, config.adapt), log, split.valid, protocol
            ),
            rng,
            reporter,
        )
    return TrainingResult(MetaRLAgent(policy, config.adapt), history)
