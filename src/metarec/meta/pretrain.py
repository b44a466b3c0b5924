"""Stage 1: supervised pre-training of the policy on training users' histories."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from metarec.agents.policy import SlatePolicy
from metarec.config import PretrainConfig
from metarec.meta.losses import supervised_batch_loss
from metarec.meta.sampling import SessionSampler
from metarec.meta.selection import BestWeights
from metarec.progress import Reporter

logger = logging.getLogger(__name__)

Validator = Callable[[SlatePolicy], dict[str, float]]


def pretrain(
    policy: SlatePolicy,
    sampler: SessionSampler,
    config: PretrainConfig,
    validate: Validator,
    rng: np.random.Generator,
    reporter: Reporter,
) -> list[dict[str, float]]:
    """Train with the next-items loss and keep the epoch with the best validation score.

    The learning rate follows a cosine decay over ``config.epochs``.

    Returns one record per epoch (training loss and validation figures); the
    policy is left holding the best epoch's weights.
    """
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    history = [{"epoch": 0.0, "train_loss": float("nan"), **validate(policy)}]
    best = BestWeights(policy, history[0])
    stale = 0
    reporter.start("pretrain", config.epochs)
    for epoch in range(1, config.epochs + 1):
        train_loss = _run_epoch(policy, sampler, config, optimizer, rng)
        schedule.step()
        record = {"epoch": float(epoch), "train_loss": train_loss, **validate(policy)}
        history.append(record)
        reporter.advance("pretrain", loss=train_loss, val_score=record["score"])
        logger.debug("pretrain epoch %d: %s", epoch, record)
        if best.offer(policy, record):
            stale = 0
        else:
            stale += 1
            if stale >= config.patience:
                logger.info("pretrain: early stop at epoch %d", epoch)
                break
    reporter.finish("pretrain")
    best.finish(policy, history, config.keep_best, "pretrain", "epoch")
    return history


def _run_epoch(
    policy: SlatePolicy,
    sampler: SessionSampler,
    config: PretrainConfig,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
) -> float:
    policy.train()
    users = sampler.epoch_users(config.samples_per_user, rng)
    losses = []
    for start in range(0, users.size, config.batch_size):
        samples = [
            sampler.sample(int(user), rng) for user in users[start : start + config.batch_size]
        ]
        loss = supervised_batch_loss(policy, samples)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))
