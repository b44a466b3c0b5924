"""Plackett-Luce slates: sampling without replacement and their log-probabilities."""

from __future__ import annotations

import torch


def sample_slate(logits: torch.Tensor, slate_size: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ordered slates without replacement from the Plackett-Luce model of ``logits``.

    Adding Gumbel noise and taking the top ``slate_size`` draws exactly from
    Plackett-Luce (the Gumbel-top-k trick). Masked items must carry a very low
    logit so that they are never drawn.
    """
    uniform = torch.rand(logits.shape, generator=generator, device="cpu").to(logits.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
    return torch.topk(logits.detach() + gumbel, slate_size, dim=-1).indices


def slate_log_prob(logits: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
    """Return ``log P(slate)`` under Plackett-Luce, one value per row."""
    return position_log_probs(logits, slate).sum(dim=-1)


def position_log_probs(logits: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
    """Return ``(batch, slate_size)`` terms whose sum over positions is ``log P(slate)``.

    Position ``j`` contributes ``s_{a_j} - log(sum of exp(s) over the items not placed before j)``,
    the log-probability of choosing ``a_j`` among the items not yet placed.
    """
    chosen = logits.gather(-1, slate)
    # The items not placed before position j are the items outside the slate plus the slate
    # items at positions j, j+1, ... Adding those masses, rather than subtracting the placed
    # mass from the total, stays exact when the first items hold almost all of the mass.
    outside = torch.logsumexp(logits.scatter(-1, slate, float("-inf")), dim=-1, keepdim=True)
    from_position = torch.logcumsumexp(chosen.flip(-1), dim=-1).flip(-1)
    return chosen - torch.logaddexp(outside, from_position)


def first_position_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Return the entropy of the softmax over items, one value per row."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)
