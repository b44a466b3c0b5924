"""A Wasserstein GAN with gradient penalty (WGAN-GP) over user preference vectors.

The generator maps Gaussian noise to a preference vector through an MLP. The critic is an
MLP scored by the Wasserstein-1 objective with the gradient penalty of Gulrajani et al.
(2017, "Improved Training of Wasserstein GANs"). Three stabilisers are used:

- vectors are standardised per dimension before training, so one learning rate suits
  every response model;
- the critic takes ``critic_steps`` updates per generator update, with Adam betas
  (0.5, 0.9) as in the WGAN-GP paper;
- samples come from an exponential moving average of the generator's weights, which
  damps the oscillation of the last iterates.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from metarec.tasks.generative import check_sample_size, check_vectors

logger = logging.getLogger(__name__)


@dataclass
class GanCurve:
    """Training curve, one entry per ``log_every`` generator steps (window means).

    ``wasserstein`` is the critic's estimate ``E[D(real)] - E[D(fake)]`` of the
    Wasserstein-1 distance in standardised units, which falls as the generator improves.
    """

    step: list[int] = field(default_factory=list)
    wasserstein: list[float] = field(default_factory=list)
    gradient_penalty: list[float] = field(default_factory=list)
    generator_loss: list[float] = field(default_factory=list)


class PreferenceGAN:
    """WGAN-GP that fits user preference vectors and samples virtual ones.

    ``noise_dim`` defaults to the dimension of the vectors, because a generator with
    fewer noise inputs than outputs can only reach a lower-dimensional manifold and
    cannot match a full-rank distribution. ``steps`` counts generator updates. ``fit`` is
    deterministic for a given ``seed`` on one device and torch version, and
    ``sample(n, seed)`` is deterministic for its seed.
    """

    def __init__(
        self,
        *,
        noise_dim: int | None = None,
        hidden: int = 256,
        layers: int = 2,
        steps: int = 1500,
        critic_steps: int = 5,
        batch_size: int = 128,
        learning_rate: float = 5e-4,
        penalty_weight: float = 10.0,
        ema_decay: float = 0.99,
        log_every: int = 25,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        for name, value in (
            ("noise_dim", 1 if noise_dim is None else noise_dim),
            ("hidden", hidden),
            ("layers", layers),
            ("critic_steps", critic_steps),
            ("batch_size", batch_size),
            ("log_every", log_every),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.noise_dim = noise_dim
        self.hidden = hidden
        self.layers = layers
        self.steps = steps
        self.critic_steps = critic_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.penalty_weight = penalty_weight
        self.ema_decay = ema_decay
        self.log_every = log_every
        self.seed = seed
        self.device = torch.device(device)

    def fit(self, vectors: np.ndarray) -> PreferenceGAN:
        """Train the generator and critic on ``(n_users, dim)`` vectors and return ``self``."""
        data = check_vectors(vectors)
        self.mean_ = data.mean(axis=0)
        self.scale_ = np.maximum(data.std(axis=0), 1e-8)
        real = torch.as_tensor((data - self.mean_) / self.scale_, dtype=torch.float32)
        real = real.to(self.device)
        self.dim_ = data.shape[1]
        self.noise_dim_ = self.dim_ if self.noise_dim is None else self.noise_dim
        self.curve_ = GanCurve()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.generator_ = _mlp(self.noise_dim_, self.hidden, self.dim_, self.layers)
            self.generator_.to(self.device)
            critic = _mlp(self.dim_, self.hidden, 1, self.layers).to(self.device)
            self.average_ = copy.deepcopy(self.generator_).requires_grad_(False)
            self._train(real, critic)
        logger.info(
            "GAN trained for %d generator steps, final Wasserstein estimate %.4f",
            self.steps,
            self.curve_.wasserstein[-1] if self.curve_.wasserstein else float("nan"),
        )
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` preference vectors from the averaged generator."""
        n = check_sample_size(n)
        if not hasattr(self, "average_"):
            raise ValueError("the GAN is not fitted. Call fit(vectors) first")
        noise_source = torch.Generator().manual_seed(seed)
        noise = torch.randn(n, self.noise_dim_, generator=noise_source).to(self.device)
        with torch.no_grad():
            standardised = self.average_(noise).cpu().double().numpy()
        return standardised * self.scale_ + self.mean_

    def _train(self, real: torch.Tensor, critic: nn.Module) -> None:
        betas = (0.5, 0.9)
        generator_optimizer = torch.optim.Adam(
            self.generator_.parameters(), lr=self.learning_rate, betas=betas
        )
        critic_optimizer = torch.optim.Adam(critic.parameters(), lr=self.learning_rate, betas=betas)
        window: list[tuple[float, float, float]] = []
        for step in range(1, self.steps + 1):
            for _ in range(self.critic_steps):
                distance, penalty = self._critic_step(real, critic, critic_optimizer)
            generator_loss = self._generator_step(critic, generator_optimizer)
            self._update_average()
            window.append((distance, penalty, generator_loss))
            if step % self.log_every == 0 or step == self.steps:
                self._record(step, window)
                window = []

    def _critic_step(
        self, real: torch.Tensor, critic: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[float, float]:
        batch = real[torch.randint(real.shape[0], (self.batch_size,), device=self.device)]
        with torch.no_grad():
            fake = self.generator_(self._noise(self.batch_size))
        distance = critic(batch).mean() - critic(fake).mean()
        penalty = self._gradient_penalty(critic, batch, fake)
        loss = -distance + self.penalty_weight * penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(distance.detach()), float(penalty.detach())

    def _gradient_penalty(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        """Return the mean of ``(||grad D(x)|| - 1)^2`` on random points between the batches."""
        weight = torch.rand(real.shape[0], 1, device=self.device)
        mixed = (weight * real + (1.0 - weight) * fake).requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
        return ((gradient.norm(dim=1) - 1.0) ** 2).mean()

    def _generator_step(self, critic: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        loss = -critic(self.generator_(self._noise(self.batch_size))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def _update_average(self) -> None:
        with torch.no_grad():
            pairs = zip(self.average_.parameters(), self.generator_.parameters(), strict=True)
            for averaged, current in pairs:
                averaged.lerp_(current, 1.0 - self.ema_decay)

    def _noise(self, count: int) -> torch.Tensor:
        return torch.randn(count, self.noise_dim_, device=self.device)

    def _record(self, step: int, window: list[tuple[float, float, float]]) -> None:
        means = np.mean(np.array(window), axis=0)
        self.curve_.step.append(step)
        self.curve_.wasserstein.append(float(means[0]))
        self.curve_.gradient_penalty.append(float(means[1]))
        self.curve_.generator_loss.append(float(means[2]))


def _mlp(inputs: int, hidden: int, outputs: int, layers: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)
