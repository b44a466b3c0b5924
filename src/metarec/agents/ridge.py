"""A closed-form ridge regression over a session's feedback, solved per user inside the policy."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from metarec.agents.tokens import TokenBatch
from metarec.session import CLICK, HISTORY, SKIP

_TOKEN_KINDS = 3
"""History, click and skip tokens, in the order of their feedback codes."""
_START_DECAY = -6.0
"""Raw decay at the start; softplus(-6) = 0.0025, so old slates count almost in full."""


class RidgeHead(nn.Module):
    """Per-user ridge regression of feedback on item features, solved in closed form.

    Token ``t`` of a session has item features ``x_t``, a target ``y_t`` and a
    weight ``c_t``. The head solves the weighted ridge regression
    ``w = mu + (X^T C X + lambda I)^-1 X^T C (y - X mu)`` and scores item ``i``
    by ``scale * f_i . w``. The item features ``f``, the prior ``mu``,
    ``lambda`` and ``scale`` are shared by all users and meta-learned, while
    ``w`` is fit to each user's own feedback at every step, as in
    differentiable closed-form base learners (Bertinetto et al., ICLR 2019).

    Targets and weights are learned per token kind (history, click, skip),
    starting at targets 1, 1, 0 and weights 1, which is the plain ridge
    regression a linear bandit runs. With ``slate_size``, the tokens after the
    history are read as complete slates of that size, newest last. A skip then
    also gets a learned weight per slate position, since a skip low on a slate
    may only mean that the user never looked there. Every token is also
    discounted by ``exp(-decay * a - miss_decay * m)``. Here ``a`` counts the
    slates shown after it and ``m`` those of them that drew no click. So the
    head can learn to forget when preferences drift, and to forget faster
    once the user stops clicking. History tokens count as older than every slate.

    With ``dropout`` > 0, training mode drops each token from the regression
    with that probability and scales the kept weights by ``1 / (1 - dropout)``.
    """

    def __init__(
        self, n_items: int, dim: int, slate_size: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.slate_size = slate_size
        self.dropout = nn.Dropout(dropout)
        self.features = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.prior = nn.Parameter(torch.zeros(dim))
        self.log_penalty = nn.Parameter(torch.zeros(()))
        self.scale = nn.Parameter(torch.ones(()))
        targets = torch.zeros(_TOKEN_KINDS)
        targets[[HISTORY, CLICK]] = 1.0
        self.targets = nn.Parameter(targets)
        self.log_weights = nn.Parameter(torch.zeros(_TOKEN_KINDS))
        if slate_size is not None:
            self.skip_log_weights = nn.Parameter(torch.zeros(slate_size))
            self.raw_decay = nn.Parameter(torch.tensor(_START_DECAY))
            self.raw_miss_decay = nn.Parameter(torch.tensor(_START_DECAY))
        nn.init.normal_(self.features.weight, std=dim**-0.5)
        with torch.no_grad():
            self.features.weight[n_items].zero_()

    def initialise(
        self, features: np.ndarray, prior: np.ndarray, penalty: float, scale: float
    ) -> None:
        """Start from given item features and prior, e.g. PureSVD factors of a training log."""
        with torch.no_grad():
            self.features.weight[:-1].copy_(torch.as_tensor(features))
            self.prior.copy_(torch.as_tensor(prior))
            self.log_penalty.fill_(float(np.log(penalty)))
            self.scale.fill_(scale)

    @property
    def decay(self) -> torch.Tensor:
        """Return the discount rate per slate shown since a token (0 without ``slate_size``)."""
        if self.slate_size is None:
            return torch.zeros((), device=self.prior.device)
        return nn.functional.softplus(self.raw_decay)

    def token_weights(self, batch: TokenBatch) -> torch.Tensor:
        """Return the weight ``c_t`` of every token, ``(batch, tokens)``; padding weighs 0."""
        present = ~batch.padding
        kinds = batch.feedback.clamp(max=_TOKEN_KINDS - 1)
        log_weight = self.log_weights[kinds]
        if self.slate_size is not None:
            log_weight = log_weight + self._slate_terms(batch, kinds, present)
        return self.dropout(log_weight.exp() * present.to(log_weight.dtype))

    def _slate_terms(
        self, batch: TokenBatch, kinds: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        assert self.slate_size is not None
        size = self.slate_size
        index = torch.arange(batch.items.shape[1], device=batch.items.device)[None]
        from_end = (batch.lengths[:, None] - 1 - index).clamp(min=0)
        history = kinds == HISTORY
        position = size - 1 - from_end % size
        skip_term = torch.where(kinds == SKIP, self.skip_log_weights[position], 0.0)
        slates_shown = (~history & present).sum(dim=1, keepdim=True) // size
        age = torch.where(history, slates_shown, from_end // size)
        misses = _misses_after(kinds, present, age, slates_shown, size)
        miss_decay = nn.functional.softplus(self.raw_miss_decay)
        return skip_term - self.decay * age.to(skip_term.dtype) - miss_decay * misses

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        """Return ``(batch, n_items)`` ridge scores of every item."""
        weights = self.token_weights(batch)
        tokens = self.features(batch.items)
        kinds = batch.feedback.clamp(max=_TOKEN_KINDS - 1)
        dim = tokens.shape[-1]
        weighted = tokens * weights[..., None]
        gram = weighted.transpose(1, 2) @ tokens
        penalty = self.log_penalty.exp() * torch.eye(dim, device=tokens.device)
        residual = self.targets[kinds] - tokens @ self.prior
        rhs = (weighted.transpose(1, 2) @ residual[..., None]).squeeze(-1)
        solution = self.prior + torch.linalg.solve(gram + penalty, rhs)
        return self.scale * (solution @ self.features.weight[:-1].T)


def _misses_after(
    kinds: torch.Tensor,
    present: torch.Tensor,
    age: torch.Tensor,
    slates_shown: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Return, per token, how many slates newer than its own drew no click.

    ``age`` counts the slates shown after each token's slate (0 for the
    newest). A run of clickless slates is the first sign that a user's taste
    has moved, so it can discount the older evidence faster than age alone.
    """
    slates = kinds.shape[1] // size + 2
    newest_first = torch.where(present & (kinds != HISTORY), age, slates - 1).clamp(max=slates - 1)
    clicks = torch.zeros(kinds.shape[0], slates, device=kinds.device)
    clicks.scatter_add_(1, newest_first, ((kinds == CLICK) & present).to(clicks.dtype))
    exists = torch.arange(slates, device=kinds.device)[None] < slates_shown
    clickless = (exists & (clicks == 0)).to(clicks.dtype)
    # newer[:, a] is the number of clickless slates among the a newest ones.
    newer = torch.cat([torch.zeros_like(clickless[:, :1]), clickless.cumsum(dim=1)], dim=1)
    return newer.gather(1, age.clamp(max=slates))
