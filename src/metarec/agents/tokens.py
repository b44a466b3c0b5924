"""Pack sessions into padded tensors for the policy network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metarec.session import FEEDBACK_TYPES, Session


@dataclass
class TokenBatch:
    """Left-aligned token tensors; ``padding`` is true at positions without a token."""

    items: torch.Tensor
    feedback: torch.Tensor
    padding: torch.Tensor
    lengths: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.items.shape[0])


def pack_sessions(
    sessions: Sequence[Session], n_items: int, max_tokens: int, device: torch.device
) -> TokenBatch:
    """Keep the last ``max_tokens`` tokens of each session and pad to a common length.

    Padding uses item ``n_items`` and feedback ``FEEDBACK_TYPES``, both of
    which have their own embedding rows.
    """
    lengths = np.array([min(len(s), max_tokens) for s in sessions], dtype=np.int64)
    width = max(int(lengths.max(initial=0)), 1)
    items = np.full((len(sessions), width), n_items, dtype=np.int64)
    feedback = np.full((len(sessions), width), FEEDBACK_TYPES, dtype=np.int64)
    for row, session in enumerate(sessions):
        length = lengths[row]
        if length:
            items[row, :length] = session.items[-length:]
            feedback[row, :length] = session.feedback[-length:]
    positions = np.arange(width)[None, :]
    return TokenBatch(
        items=torch.from_numpy(items).to(device),
        feedback=torch.from_numpy(feedback).to(device),
        padding=torch.from_numpy(positions >= lengths[:, None]).to(device),
        lengths=torch.from_numpy(lengths).to(device),
    )


def shown_mask(sessions: Sequence[Session], n_items: int, device: torch.device) -> torch.Tensor:
    """Return a ``(batch, n_items)`` bool tensor that is true for every item a session holds."""
    mask = np.zeros((len(sessions), n_items), dtype=bool)
    for row, session in enumerate(sessions):
        mask[row, session.shown()] = True
    return torch.from_numpy(mask).to(device)
