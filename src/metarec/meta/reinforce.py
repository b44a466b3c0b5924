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

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from metarec.agents.policy import SlatePolicy
from metarec.agents.tokens import pack_sessions, shown_mask
from metarec.config import RLConfig
from metarec.envs.replay import LoggedUserEnv
from metarec.meta.losses import MASKED_LOGIT, next_items_loss, target_matrix
from metarec.meta.selection import BestWeights
from metarec.meta.slates import first_position_entropy, position_log_probs, sample_slate
from metarec.progress import Reporter
from metarec.session import Session

logger = logging.getLogger(__name__)


class EpisodeEnv(Protocol):
    """Interface a rollout needs of an environment; log replay and simulators both provide it.

    An environment may also offer ``allowed_mask()``, a bool ``(n_items,)``
    array of the items a slate may contain now. Without it, every item not
    yet in the session is allowed.
    """

    session: Session
    rounds: int
    slate_size: int

    @property
    def finished(self) -> bool: ...

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]: ...

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]: ...


@dataclass
class EpisodeBatch:
    """Per-round tensors of one batch of episodes, each of shape ``(batch, ...)``."""

    log_probs: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    entropies: list[torch.Tensor] = field(default_factory=list)
    clicks: list[torch.Tensor] = field(default_factory=list)
    alive: list[torch.Tensor] = field(default_factory=list)
    supervised: list[torch.Tensor] = field(default_factory=list)
    slates: list[torch.Tensor] = field(default_factory=list)

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
    envs: Sequence[EpisodeEnv],
    config: RLConfig,
    validate: Callable[[SlatePolicy], dict[str, float]],
    seed: int,
    reporter: Reporter,
) -> list[dict[str, float]]:
    """Improve the policy with policy gradients; keep the best weights on validation users.

    ``envs`` holds one environment per episode of a batch (``config.batch_size``
    of them); each iteration resets all of them with fresh seeds, so each
    draws a new task. The weights on entry count as the first candidate, so
    with ``config.keep_best`` this stage never returns a policy that
    validates worse than the one it got.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    history = [{"iteration": 0.0, "train_reward": float("nan"), **validate(policy)}]
    best = BestWeights(policy, history[0])
    reporter.start("meta-rl", config.iterations)
    for iteration in range(1, config.iterations + 1):
        policy.train()
        episodes = rollout(policy, envs, config, generator, seed + iteration)
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
            best.offer(policy, record)
        reporter.advance("meta-rl", **fields)
    reporter.finish("meta-rl")
    best.finish(policy, history, config.keep_best, "meta-rl", "iteration")
    return history


def rollout(
    policy: SlatePolicy,
    envs: Sequence[EpisodeEnv],
    config: RLConfig,
    generator: torch.Generator,
    seed: int,
) -> EpisodeBatch:
    """Play one episode in every environment with slates sampled from the policy."""
    device = next(policy.parameters()).device
    for index, env in enumerate(envs):
        env.reset(seed=seed * len(envs) + index)
    slate_size = envs[0].slate_size
    alive = torch.ones(len(envs), device=device)
    episodes = EpisodeBatch()
    hindsight: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for _ in range(envs[0].rounds):
        sessions = [env.session for env in envs]
        batch = pack_sessions(sessions, policy.n_items, policy.config.max_tokens, device)
        logits, values = policy(batch)
        blocked = blocked_items(envs, sessions, policy.n_items, device)
        if all(isinstance(env, LoggedUserEnv) for env in envs):
            # The items a logged user still wants are the supervised target of this very state.
            queries = [env.remaining_query() for env in envs]  # type: ignore[attr-defined]
            targets = target_matrix(queries, policy.n_items, device) * alive[:, None]
            episodes.supervised.append(next_items_loss(logits, targets, blocked))
        else:
            hindsight.append((logits, blocked, alive.clone()))
        logits = logits.masked_fill(blocked, MASKED_LOGIT) / config.temperature
        slates = sample_slate(logits, slate_size, generator)
        clicks = torch.zeros(len(envs), slate_size, device=device)
        for row, env in enumerate(envs):
            if alive[row] > 0:
                _, _, _, _, info = env.step(slates[row].cpu().numpy())
                clicks[row] = torch.as_tensor(info["clicked"], dtype=clicks.dtype)
        episodes.log_probs.append(position_log_probs(logits, slates))
        episodes.slates.append(slates)
        episodes.values.append(values)
        episodes.entropies.append(first_position_entropy(logits))
        episodes.clicks.append(clicks)
        episodes.alive.append(alive.clone())
        alive = alive * torch.tensor([0.0 if env.finished else 1.0 for env in envs], device=device)
    if hindsight:
        episodes.supervised = _hindsight_losses(hindsight, episodes, policy.n_items)
    return episodes


def blocked_items(
    envs: Sequence[EpisodeEnv], sessions: list[Session], n_items: int, device: torch.device
) -> torch.Tensor:
    """Return a ``(batch, n_items)`` mask of items no slate may hold now."""
    masks = [getattr(env, "allowed_mask", None) for env in envs]
    if any(mask is None for mask in masks):
        return shown_mask(sessions, n_items, device)
    allowed = np.stack([mask() for mask in masks])  # type: ignore[misc]
    return torch.from_numpy(~allowed).to(device)


def _hindsight_losses(
    states: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    episodes: EpisodeBatch,
    n_items: int,
) -> list[torch.Tensor]:
    """Return the next-items loss of each round against the items clicked from then on.

    A simulated user has no logged future, so the supervised target of a
    state is what the same user clicked in this round and later rounds of the
    episode: observed feedback only, never the simulator's parameters.
    """
    device = states[0][0].device
    clicked = torch.zeros(states[0][0].shape[0], n_items, device=device)
    losses: list[torch.Tensor] = []
    for round_index in range(len(states) - 1, -1, -1):
        logits, blocked, alive = states[round_index]
        slate = episodes.slates[round_index]
        clicked = clicked.scatter_add(1, slate, episodes.clicks[round_index]).clamp(max=1.0)
        losses.append(next_items_loss(logits, clicked * alive[:, None], blocked))
    return losses[::-1]


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
