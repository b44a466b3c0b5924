"""Stage 2: meta-RL across user tasks with REINFORCE and a learned baseline.

Every episode is a training user replayed by :class:`LoggedUserEnv`. The
policy reads the session, including the clicks and skips of earlier slates in
the same episode, so learning to earn reward over the episode means learning
to adapt within it from feedback (in-context adaptation, as in RL^2).

Credit is assigned per slate position: the item at position ``j`` of round
``t`` gets advantage ``click_tj - mean_batch(click_tj) + gamma * (G_{t+1} - V_{t+1})``,
its own click against a batch baseline plus the discounted surprise in what
followed. The log-probability of a Plackett-Luce slate is a sum over
positions, so each position's term takes its own advantage.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from metarec.agents.policy import SlatePolicy
from metarec.agents.tokens import pack_sessions, shown_mask
from metarec.config import ProtocolConfig, RLConfig
from metarec.data.interactions import InteractionLog
from metarec.envs.replay import LoggedUserEnv
from metarec.meta.losses import MASKED_LOGIT, next_items_loss, target_matrix
from metarec.meta.slates import first_position_entropy, position_log_probs, sample_slate
from metarec.progress import Reporter

logger = logging.getLogger(__name__)


@dataclass
class EpisodeBatch:
    """Per-round tensors of one batch of episodes, each of shape ``(batch, ...)``."""

    log_probs: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    entropies: list[torch.Tensor] = field(default_factory=list)
    clicks: list[torch.Tensor] = field(default_factory=list)
    alive: list[torch.Tensor] = field(default_factory=list)
    supervised: list[torch.Tensor] = field(default_factory=list)

    def returns(self, gamma: float) -> torch.Tensor:
        """Return discounted returns ``(rounds, batch)``; finished episodes earn nothing."""
        rewards = torch.stack(self.clicks).sum(dim=-1)
        returns = torch.zeros_like(rewards)
        running = torch.zeros_like(rewards[0])
        for step in range(rewards.shape[0] - 1, -1, -1):
            running = rewards[step] + gamma * running
            returns[step] = running
        return returns


def meta_rl(
    policy: SlatePolicy,
    log: InteractionLog,
    train_users: np.ndarray,
    config: RLConfig,
    protocol: ProtocolConfig,
    max_shots: int,
    validate: Callable[[SlatePolicy], dict[str, float]],
    seed: int,
    reporter: Reporter,
) -> list[dict[str, float]]:
    """Improve the policy with policy gradients; keep the best weights on validation users.

    The weights on entry count as the first candidate, so this stage never
    returns a policy that validates worse than the pre-trained one.
    """
    envs = [
        LoggedUserEnv(
            log,
            train_users,
            (1, max_shots),
            protocol.slate_size,
            protocol.rounds,
            policy.config.max_tokens,
        )
        for _ in range(config.batch_size)
    ]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    history = [{"iteration": 0.0, "train_reward": float("nan"), **validate(policy)}]
    best, best_state = history[0], copy.deepcopy(policy.state_dict())
    reporter.start("meta-rl", config.iterations)
    for iteration in range(1, config.iterations + 1):
        policy.train()
        episodes = _rollout(policy, envs, config, protocol.slate_size, generator, seed + iteration)
        loss, reward = _loss(episodes, config)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
        optimizer.step()
        fields = {"reward": reward}
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            record = {"iteration": float(iteration), "train_reward": reward, **validate(policy)}
            history.append(record)
            fields["val_score"] = record["score"]
            if record["score"] > best["score"]:
                best, best_state = record, copy.deepcopy(policy.state_dict())
        reporter.advance("meta-rl", **fields)
    reporter.finish("meta-rl")
    policy.load_state_dict(best_state)
    logger.info(
        "meta-rl: kept iteration %d (validation score %.4f)", int(best["iteration"]), best["score"]
    )
    return history


def _rollout(
    policy: SlatePolicy,
    envs: list[LoggedUserEnv],
    config: RLConfig,
    slate_size: int,
    generator: torch.Generator,
    seed: int,
) -> EpisodeBatch:
    device = next(policy.parameters()).device
    for index, env in enumerate(envs):
        env.reset(seed=seed * len(envs) + index)
    alive = torch.ones(len(envs), device=device)
    episodes = EpisodeBatch()
    for _ in range(envs[0].rounds):
        sessions = [env.session for env in envs]
        batch = pack_sessions(sessions, policy.n_items, policy.config.max_tokens, device)
        logits, values = policy(batch)
        shown_items = shown_mask(sessions, policy.n_items, device)
        # The items the user still wants are the supervised target of this very state.
        targets = target_matrix([env.remaining_query() for env in envs], policy.n_items, device)
        targets = targets * alive[:, None]
        episodes.supervised.append(next_items_loss(logits, targets, shown_items))
        logits = logits.masked_fill(shown_items, MASKED_LOGIT) / config.temperature
        slates = sample_slate(logits, slate_size, generator)
        clicks = torch.zeros(len(envs), slate_size, device=device)
        for row, env in enumerate(envs):
            if alive[row] > 0:
                _, _, _, _, info = env.step(slates[row].cpu().numpy())
                clicks[row] = torch.as_tensor(info["clicked"], dtype=clicks.dtype)
        episodes.log_probs.append(position_log_probs(logits, slates))
        episodes.values.append(values)
        episodes.entropies.append(first_position_entropy(logits))
        episodes.clicks.append(clicks)
        episodes.alive.append(alive.clone())
        alive = alive * torch.tensor([0.0 if env.finished else 1.0 for env in envs], device=device)
    return episodes


def _loss(episodes: EpisodeBatch, config: RLConfig) -> tuple[torch.Tensor, float]:
    returns = episodes.returns(config.gamma)
    values = torch.stack(episodes.values)
    alive = torch.stack(episodes.alive)
    clicks = torch.stack(episodes.clicks)
    log_probs = torch.stack(episodes.log_probs)
    count = alive.sum().clamp(min=1.0)

    # Immediate credit: each position's click against the batch mean at that round and position.
    live = alive[:, :, None]
    click_baseline = (clicks * live).sum(dim=1, keepdim=True) / live.sum(dim=1, keepdim=True).clamp(
        min=1.0
    )
    immediate = clicks - click_baseline
    # Delayed credit: how much better the rest of the episode went than the value head expected.
    surprise = (returns - values).detach() * alive
    delayed = torch.zeros_like(surprise)
    delayed[:-1] = config.gamma * surprise[1:]
    advantages = (immediate + delayed[:, :, None]) * live
    policy_loss = -(advantages * log_probs).sum() / count

    value_loss = ((returns - values) ** 2 * alive).sum() / count
    entropy_bonus = (torch.stack(episodes.entropies) * alive).sum() / count
    supervised = torch.stack(episodes.supervised).mean()
    loss = (
        config.policy_coef * policy_loss
        + config.value_coef * value_loss
        - config.entropy_coef * entropy_bonus
        + config.supervised_coef * supervised
    )
    mean_episode_reward = float(clicks.sum(dim=(0, 2)).mean())
    return loss, mean_episode_reward
