"""Losses shared by pre-training, meta-RL and MAML."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metarec.agents.policy import SlatePolicy
from metarec.agents.tokens import pack_sessions, shown_mask
from metarec.meta.sampling import SupervisedSample

MASKED_LOGIT = -1e9


def target_matrix(
    targets: Sequence[np.ndarray], n_items: int, device: torch.device
) -> torch.Tensor:
    """Return a ``(batch, n_items)`` multi-hot matrix of the target items."""
    matrix = np.zeros((len(targets), n_items), dtype=np.float32)
    for row, items in enumerate(targets):
        matrix[row, items] = 1.0
    return torch.from_numpy(matrix).to(device)


def next_items_loss(
    logits: torch.Tensor, targets: torch.Tensor, shown: torch.Tensor
) -> torch.Tensor:
    """Return the mean negative log-likelihood per target item under the item softmax.

    Items already in the session are excluded from the softmax, as they are
    from every ranking. A single target item makes this the usual next-item
    cross-entropy. With a set of targets every target item weighs the same,
    whatever the size of its user's set: the loss is then minimised by
    ``softmax_i`` proportional to ``P(i in targets | session)``, the order that
    maximises expected hits in a top-k slate. (Dividing each user's loss by
    the size of the set instead, as Mult-VAE does, favours items that light
    users choose and ranks popular items too low for these protocols.)
    """
    log_probs = torch.log_softmax(logits.masked_fill(shown, MASKED_LOGIT), dim=-1)
    return -(targets * log_probs).sum() / targets.sum().clamp(min=1.0)


def supervised_batch_loss(policy: SlatePolicy, samples: Sequence[SupervisedSample]) -> torch.Tensor:
    """Return the next-items loss of the policy on a batch of sampled sessions."""
    device = next(policy.parameters()).device
    sessions = [sample.session for sample in samples]
    batch = pack_sessions(sessions, policy.n_items, policy.config.max_tokens, device)
    logits, _ = policy(batch)
    targets = target_matrix([sample.targets for sample in samples], policy.n_items, device)
    return next_items_loss(logits, targets, shown_mask(sessions, policy.n_items, device))
