"""A non-meta deep RL baseline: slate DQN over the agent's policy network.

The :class:`SlatePolicy` logits serve as per-item Q-values ``Q(s, i)``, and
the slate of a state is the ``k`` allowed items of highest Q. The value of a
slate is the sum of its items' values (a SlateQ-style decomposition), so the
one-step Bellman target of the slate, ``r + gamma * max_A' Q(s', A')``, is
split over its items: item ``i`` of the slate gets

    y_i = r_i + (gamma / k) * sum_{j in A'} Q_target(s', j),

with ``r_i`` the reward of item ``i`` and ``A'`` the greedy slate of the
online network at ``s'`` (double DQN). The targets of a slate add up to the
slate's Bellman target. Transitions of all training users go into one replay
buffer, so there is no per-user, episodic meta-learning objective. The
network reads a user's state only from the session tokens.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from metarec.agents.policy import SlatePolicy
from metarec.agents.tokens import pack_sessions
from metarec.config import ModelConfig
from metarec.envs.simulated import SimulatedUserEnv
from metarec.errors import ConfigError
from metarec.progress import Reporter, SilentReporter
from metarec.recommender import Recommender
from metarec.session import Session
from metarec.simulation.bandits import fill_slates

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DQNConfig:
    """Training settings of :func:`train_dqn`.

    One environment step shows one slate to each of ``envs`` users at once
    and adds ``envs`` transitions to the buffer. Exploration replaces each
    slate rank by a random allowed item with probability epsilon, which
    decays linearly from ``epsilon_start`` to ``epsilon_end`` over the first
    ``epsilon_decay`` fraction of the steps.
    """

    steps: int = 300
    envs: int = 16
    batch_size: int = 64
    buffer_size: int = 20_000
    warmup: int = 256
    updates_per_step: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    gamma: float = 0.9
    epsilon_start: float = 0.5
    epsilon_end: float = 0.05
    epsilon_decay: float = 0.5
    target_every: int = 50
    huber_delta: float = 1.0
    grad_clip: float = 5.0
    eval_every: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        positive = ("steps", "envs", "batch_size", "buffer_size", "updates_per_step")
        for name in (*positive, "target_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DQNConfig.{name} must be at least 1; got {getattr(self, name)}")
        for name in ("epsilon_start", "epsilon_end", "epsilon_decay", "gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"DQNConfig.{name} must lie in [0, 1]; got {getattr(self, name)}")
        if self.lr <= 0 or self.huber_delta <= 0:
            raise ConfigError(
                f"DQNConfig.lr and huber_delta must be positive; got {self.lr}, {self.huber_delta}"
            )
        if self.eval_every < 0 or self.warmup < 0:
            raise ConfigError(
                f"DQNConfig.eval_every and warmup must be >= 0; got {self.eval_every}, "
                f"{self.warmup}"
            )

    def epsilon_at(self, step: int) -> float:
        """Return the exploration rate of environment step ``step`` (0-based)."""
        span = max(self.epsilon_decay * self.steps, 1.0)
        fraction = min(step / span, 1.0)
        return self.epsilon_start + fraction * (self.epsilon_end - self.epsilon_start)


class DQNRecommender(Recommender):
    """Scores items with the Q-values of a trained network; the greedy slate is the top k."""

    name = "DQN"

    def __init__(self, network: SlatePolicy) -> None:
        self.network = network

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        return q_values(self.network, sessions).cpu().numpy()


@dataclass
class DQNResult:
    """The trained agent and one record per evaluation (``step``, ``loss``, ``validation``)."""

    recommender: DQNRecommender
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Transition:
    """One slate shown to one user: state, slate, per-item rewards and what followed.

    ``next_allowed`` is the packed bit mask (``np.packbits``) of the items
    the next state may show, which keeps a transition small.
    """

    state: Session
    slate: np.ndarray
    rewards: np.ndarray
    next_state: Session
    done: bool
    next_allowed: np.ndarray


class ReplayBuffer:
    """A ring buffer of transitions pooled over every training user."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.transitions: list[Transition] = []
        self._position = 0

    def __len__(self) -> int:
        return len(self.transitions)

    def add(self, transition: Transition) -> None:
        """Append a transition, overwriting the oldest one once the buffer is full."""
        if len(self.transitions) < self.capacity:
            self.transitions.append(transition)
        else:
            self.transitions[self._position] = transition
        self._position = (self._position + 1) % self.capacity

    def sample(self, size: int, rng: np.random.Generator) -> list[Transition]:
        """Return ``size`` transitions drawn uniformly with replacement."""
        return [self.transitions[i] for i in rng.integers(len(self.transitions), size=size)]


def q_values(network: SlatePolicy, sessions: Sequence[Session]) -> torch.Tensor:
    """Return the Q-values ``(batch, n_items)`` of the network in evaluation mode."""
    network.eval()
    device = next(network.parameters()).device
    with torch.no_grad():
        batch = pack_sessions(sessions, network.n_items, network.config.max_tokens, device)
        logits, _ = network(batch)
    return logits.float()


def train_dqn(
    env_factory: Callable[[], SimulatedUserEnv],
    policy_init: SlatePolicy | ModelConfig,
    config: DQNConfig,
    seed: int,
    *,
    validate: Callable[[Recommender], float] | None = None,
    reporter: Reporter | None = None,
) -> DQNResult:
    """Train a slate DQN on the training users that ``env_factory``'s environments hold.

    ``policy_init`` is either a :class:`SlatePolicy`, whose weights are copied
    as the starting point (a pre-trained agent, say), or a ``ModelConfig`` for a
    freshly initialised network. With ``validate`` and ``config.eval_every``,
    the weights are scored at step 0, every ``eval_every`` steps and at the
    end, and the best-scoring weights are returned. Without them the final
    weights are returned.
    """
    reporter = reporter or SilentReporter()
    torch.manual_seed(seed)
    envs = [env_factory() for _ in range(config.envs)]
    online = _build_network(policy_init, envs[0].n_items, config.device)
    target = copy.deepcopy(online)
    optimizer = torch.optim.AdamW(
        online.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    buffer = ReplayBuffer(config.buffer_size)
    rng = np.random.default_rng(seed)
    trainer = _Trainer(online, target, optimizer, config, rng)
    agent = DQNRecommender(online)
    tracker = _BestWeights(online, validate if config.eval_every > 0 else None)

    episodes = 0
    for env in envs:
        env.reset(seed=_reset_seed(seed, episodes))
        episodes += 1
    reporter.start("dqn", config.steps)
    for step in range(config.steps):
        epsilon = config.epsilon_at(step)
        reward, done_flags = _collect(envs, online, buffer, epsilon, rng)
        for env, done in zip(envs, done_flags, strict=True):
            if done:
                env.reset(seed=_reset_seed(seed, episodes))
                episodes += 1
        loss = float("nan")
        if len(buffer) >= max(config.warmup, config.batch_size):
            loss = trainer.update(buffer, config.updates_per_step)
        fields = {"reward": reward, "epsilon": epsilon, "loss": loss}
        if tracker.enabled and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
            fields["val_score"] = tracker.evaluate(agent, step + 1, loss)
        reporter.advance("dqn", **fields)
    reporter.finish("dqn")
    tracker.restore(config.steps)
    logger.info(
        "dqn: %d steps, %d episodes, %d updates, kept step %d",
        config.steps,
        episodes,
        trainer.updates,
        tracker.best_step,
    )
    return DQNResult(agent, tracker.history)


def _build_network(init: SlatePolicy | ModelConfig, n_items: int, device: str) -> SlatePolicy:
    if isinstance(init, SlatePolicy):
        if init.n_items != n_items:
            raise ConfigError(
                f"the initial policy scores {init.n_items} items, but the environments have "
                f"{n_items}; start from a policy trained on the same catalog"
            )
        network = copy.deepcopy(init)
    else:
        network = SlatePolicy(n_items, init)
    return network.to(torch.device(device))


def _reset_seed(seed: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _collect(
    envs: list[SimulatedUserEnv],
    online: SlatePolicy,
    buffer: ReplayBuffer,
    epsilon: float,
    rng: np.random.Generator,
) -> tuple[float, list[bool]]:
    """Show one epsilon-greedy slate to every user and store the transitions.

    Returns the mean slate reward and which episodes ended.
    """
    states = [env.session for env in envs]
    available = np.stack([env.allowed_mask() for env in envs])
    scores = q_values(online, states).cpu().numpy().astype(np.float64)
    slate_size = envs[0].slate_size
    explore = rng.random((len(envs), slate_size)) < epsilon
    keys = rng.random(scores.shape)
    slates = fill_slates(scores, available, explore, keys)
    total = 0.0
    done_flags = []
    for env, state, slate in zip(envs, states, slates, strict=True):
        _, reward, terminated, truncated, info = env.step(slate)
        clicked = np.asarray(info["clicked"], dtype=bool)
        done = bool(terminated or truncated)
        rewards = _item_rewards(reward, clicked)
        allowed = np.packbits(env.allowed_mask())
        buffer.add(Transition(state, slate, rewards, env.session, done, allowed))
        total += reward
        done_flags.append(done)
    return total / len(envs), done_flags


def slate_td_targets(
    online: SlatePolicy, target: SlatePolicy, batch: Sequence[Transition], gamma: float
) -> torch.Tensor:
    """Return the per-item double-DQN targets ``(batch, slate_size)`` of some transitions.

    ``y_i = r_i + (gamma / k) * sum_{j in A'} Q_target(s', j)`` where ``A'``
    is the top-k slate of ``online`` among the items allowed at ``s'``. Done
    transitions get ``y_i = r_i``.
    """
    device = next(online.parameters()).device
    rewards = torch.as_tensor(np.stack([t.rewards for t in batch]), device=device)
    slate_size = rewards.shape[1]
    # Done transitions have no future term, and their next state may lack k allowed items.
    live = [i for i, t in enumerate(batch) if not t.done]
    future = torch.zeros(len(batch), device=device)
    if live:
        live_states = [batch[i].next_state for i in live]
        packed = np.stack([np.unpackbits(batch[i].next_allowed)[: online.n_items] for i in live])
        online_q = q_values(online, live_states)
        online_q[~torch.as_tensor(packed.astype(bool), device=device)] = -torch.inf
        greedy = torch.topk(online_q, slate_size, dim=1).indices
        target_q = q_values(target, live_states)
        future[torch.as_tensor(live, device=device)] = target_q.gather(1, greedy).sum(dim=1)
    return rewards + (gamma / slate_size) * future[:, None]


def _item_rewards(reward: float, clicked: np.ndarray) -> np.ndarray:
    """Split a slate's reward over its clicked items in equal shares.

    For click rewards this is exactly 1 per click. For purchases, ratings or
    revenue the environment reports only the slate total, so each clicked
    item gets an equal share of it.
    """
    count = int(clicked.sum())
    if count == 0:
        return np.zeros(clicked.shape[0], dtype=np.float32)
    return (clicked * (reward / count)).astype(np.float32)


class _Trainer:
    """Gradient updates of the online network against the periodically synced target."""

    def __init__(
        self,
        online: SlatePolicy,
        target: SlatePolicy,
        optimizer: torch.optim.Optimizer,
        config: DQNConfig,
        rng: np.random.Generator,
    ) -> None:
        self.online = online
        self.target = target
        self.optimizer = optimizer
        self.config = config
        self.rng = rng
        self.updates = 0
        self.loss_fn = nn.HuberLoss(delta=config.huber_delta)

    def update(self, buffer: ReplayBuffer, count: int) -> float:
        """Take ``count`` gradient steps on minibatches drawn uniformly from the buffer."""
        losses = []
        for _ in range(count):
            losses.append(self._step(buffer.sample(self.config.batch_size, self.rng)))
            self.updates += 1
            if self.updates % self.config.target_every == 0:
                self.target.load_state_dict(self.online.state_dict())
        return float(np.mean(losses))

    def _step(self, batch: list[Transition]) -> float:
        device = next(self.online.parameters()).device
        slates = torch.as_tensor(np.stack([t.slate for t in batch]), device=device)
        targets = slate_td_targets(self.online, self.target, batch, self.config.gamma)
        self.online.train()
        states = pack_sessions(
            [t.state for t in batch], self.online.n_items, self.online.config.max_tokens, device
        )
        logits, _ = self.online(states)
        loss = self.loss_fn(logits.gather(1, slates), targets)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return float(loss.detach())


class _BestWeights:
    """Validates the online network now and then and remembers the best weights."""

    def __init__(
        self, network: SlatePolicy, validate: Callable[[Recommender], float] | None
    ) -> None:
        self.network = network
        self.validate = validate
        self.history: list[dict[str, float]] = []
        self.best_step = -1
        self.best_score = -np.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        if validate is not None:
            self.evaluate(DQNRecommender(network), 0, float("nan"))

    @property
    def enabled(self) -> bool:
        return self.validate is not None

    def evaluate(self, agent: Recommender, step: int, loss: float) -> float:
        if self.validate is None:
            raise RuntimeError("no validation function was given")
        score = float(self.validate(agent))
        self.history.append({"step": float(step), "loss": loss, "validation": score})
        if score > self.best_score:
            self.best_step, self.best_score = step, score
            self.best_state = copy.deepcopy(self.network.state_dict())
        return score

    def restore(self, final_step: int) -> None:
        """Load the best weights, or keep the final ones when nothing was validated."""
        if self.best_state is None:
            self.best_step = final_step
        else:
            self.network.load_state_dict(self.best_state)
