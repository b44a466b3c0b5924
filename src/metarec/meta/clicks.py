"""Stage 2 in simulation: meta-train the policy to predict the clicks of the users it meets.

Every iteration plays one episode per environment, each a task drawn from
the training tasks, with slates sampled from the policy (Gumbel top-k of the
logits over ``temperature``). The policy is then fit to the feedback those
users gave. Item ``i`` shown at slate position ``j`` in a round whose state
is ``s`` has click logit ``score_i(s) + o_j``, a position-based click model
with learned position terms ``o``. The loss is the binary cross-entropy of
every shown item's click. The state of round ``t`` contains the clicks and
skips of rounds ``0..t-1``, so fitting round ``t``'s clicks teaches the
policy to adapt to a user from in-episode feedback. Acting greedily on the
scores then shows the items of highest estimated click probability, best
first: the one-step optimum of a position-based model whose examination
falls with the position.

This is value-based meta-RL with a discount of zero: the score is the
estimated immediate reward of an item. It has far lower variance than a
policy gradient, because every shown item carries its own label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from metarec.agents.policy import SlatePolicy
from metarec.agents.tokens import pack_sessions
from metarec.config import RLConfig
from metarec.meta.losses import MASKED_LOGIT
from metarec.meta.reinforce import EpisodeEnv, blocked_items, meta_rl
from metarec.meta.selection import BestWeights
from metarec.meta.slates import sample_slate
from metarec.progress import Reporter

logger = logging.getLogger(__name__)

WARMUP_ITERATIONS = 20
"""Iterations that fit the position terms alone, so the policy's ranking starts unchanged.

Short runs warm up for a quarter of their iterations instead.
"""
START_POSITION_LOGIT = -3.0
"""Starting position terms; a logit of -3 is a click rate of about 5%."""


class PositionTerms(nn.Module):
    """The learned click-logit offset ``o_j`` of each slate position."""

    def __init__(self, slate_size: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.full((slate_size,), START_POSITION_LOGIT))


def meta_train(
    policy: SlatePolicy,
    envs: Sequence[EpisodeEnv],
    config: RLConfig,
    validate: Callable[[SlatePolicy], dict[str, float]],
    seed: int,
    reporter: Reporter,
) -> list[dict[str, float]]:
    """Run stage 2 with the objective ``config.objective`` names; see :func:`click_training`."""
    train = click_training if config.objective == "clicks" else meta_rl
    return train(policy, envs, config, validate, seed, reporter)


def click_training(
    policy: SlatePolicy,
    envs: Sequence[EpisodeEnv],
    config: RLConfig,
    validate: Callable[[SlatePolicy], dict[str, float]],
    seed: int,
    reporter: Reporter,
) -> list[dict[str, float]]:
    """Fit the policy to simulated clicks; keep the best weights on validation users.

    ``envs`` contains one environment per episode of a batch, and each iteration
    resets all of them with fresh seeds. The weights on entry are the first
    candidate, so with ``config.keep_best`` the result never validates worse
    than the policy passed in. Returns one record per validation.
    """
    device = next(policy.parameters()).device
    positions = PositionTerms(envs[0].slate_size).to(device)
    optimizer = torch.optim.AdamW(
        parameter_groups(policy, positions, config.lr, config.weight_decay)
    )
    warmup = torch.optim.Adam(positions.parameters(), lr=config.lr * 10)
    warmup_iterations = min(WARMUP_ITERATIONS, config.iterations // 4)
    generator = torch.Generator().manual_seed(seed)
    history = [{"iteration": 0.0, "train_loss": float("nan"), "reward": float("nan")}]
    history[0].update(validate(policy))
    best = BestWeights(policy, history[0])
    reporter.start("meta-rl", config.iterations)
    for iteration in range(1, config.iterations + 1):
        policy.train()
        loss, reward = episode_click_loss(
            policy, positions, envs, config.temperature, generator, seed + iteration
        )
        step = warmup if iteration <= warmup_iterations else optimizer
        step.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
        step.step()
        fields = {"loss": float(loss.detach()), "reward": reward}
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            record = {"iteration": float(iteration), "train_loss": fields["loss"], "reward": reward}
            record.update(validate(policy))
            history.append(record)
            fields["val_score"] = record["score"]
            best.offer(policy, record)
        reporter.advance("meta-rl", **fields)
    reporter.finish("meta-rl")
    best.finish(policy, history, config.keep_best, "click training", "iteration")
    return history


def parameter_groups(
    policy: SlatePolicy, positions: PositionTerms, lr: float, weight_decay: float = 0.0
) -> list[dict[str, Any]]:
    """Return optimiser groups: shared scalars at ``3 * lr``, item biases at ``lr / 3``.

    The ridge head's scalars (penalty, scale, token targets and weights,
    decay) and the position terms are few and shared by every user, so they
    can move faster, and weight decay leaves them alone. An item bias moves
    on that item's clicks alone, so a slower rate keeps one lucky click from
    lifting an item for everyone.
    """
    fast = [*positions.parameters()]
    slow = [policy.output_bias]
    rest = []
    for name, parameter in policy.named_parameters():
        if name.startswith("ridge.") and parameter.dim() <= 1:
            fast.append(parameter)
        elif parameter is not policy.output_bias:
            rest.append(parameter)
    return [
        {"params": fast, "lr": 3 * lr, "weight_decay": 0.0},
        {"params": slow, "lr": lr / 3, "weight_decay": weight_decay},
        {"params": rest, "lr": lr, "weight_decay": weight_decay},
    ]


def episode_click_loss(
    policy: SlatePolicy,
    positions: PositionTerms,
    envs: Sequence[EpisodeEnv],
    temperature: float,
    generator: torch.Generator,
    seed: int,
) -> tuple[torch.Tensor, float]:
    """Play one episode per environment; return the click loss per episode and the mean clicks.

    Slates hold only the items an environment allows now (see
    :func:`metarec.meta.reinforce.blocked_items`).
    """
    device = next(policy.parameters()).device
    for index, env in enumerate(envs):
        env.reset(seed=seed * len(envs) + index)
    playing = list(range(len(envs)))
    losses: list[torch.Tensor] = []
    total_clicks = 0
    while playing:
        sessions = [envs[row].session for row in playing]
        batch = pack_sessions(sessions, policy.n_items, policy.config.max_tokens, device)
        logits, _ = policy(batch)
        blocked = blocked_items([envs[row] for row in playing], sessions, policy.n_items, device)
        masked = logits.masked_fill(blocked, MASKED_LOGIT) / temperature
        slates = sample_slate(masked, envs[0].slate_size, generator)
        clicks = np.zeros(slates.shape, dtype=np.float32)
        still_playing = []
        for position, row in enumerate(playing):
            _, _, terminated, _, info = envs[row].step(slates[position].cpu().numpy())
            clicks[position] = info["clicked"]
            if not terminated:
                still_playing.append(row)
        click_logits = logits.gather(1, slates) + positions.logits[None]
        targets = torch.from_numpy(clicks).to(device)
        losses.append(
            nn.functional.binary_cross_entropy_with_logits(click_logits, targets, reduction="sum")
        )
        total_clicks += int(clicks.sum())
        playing = still_playing
    return torch.stack(losses).sum() / len(envs), total_clicks / len(envs)
