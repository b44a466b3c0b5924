"""The user response model behind every simulated environment.

A user with preference vector ``theta`` examines slate position ``j`` with
probability ``position_bias[j]`` and, having examined item ``i``, clicks it
with the attraction probability ``sigmoid(theta . item_factors[i] +
item_bias[i] + offset)``. Semi-synthetic models are fit on a real log;
synthetic ones are drawn with known parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

DEFAULT_POSITION_ETA = 1.0
"""Default exponent of the examination curve ``1 / (1 + j) ** eta`` (0-based position ``j``)."""

DEFAULT_POSITIONS = 50


def examination_probabilities(
    n_positions: int = DEFAULT_POSITIONS, eta: float = DEFAULT_POSITION_ETA
) -> np.ndarray:
    """Return the examination probability ``1 / (1 + j) ** eta`` of positions ``j = 0 .. n - 1``.

    The first position is always examined. ``eta = 0`` means every position is
    examined, and larger ``eta`` makes lower positions less likely to be seen.
    """
    if n_positions < 1:
        raise ValueError(f"n_positions must be at least 1; got {n_positions}")
    if eta < 0:
        raise ValueError(f"the position-bias exponent eta must be >= 0; got {eta}")
    return 1.0 / (1.0 + np.arange(n_positions, dtype=np.float64)) ** eta


@dataclass(frozen=True)
class ResponseModel:
    """Parameters of a logistic factor click model with position bias.

    ``user_factors`` holds the preference vectors of the users the model was
    fit on (or drawn for), one row per user index of the matching log.
    ``position_bias[j]`` is the examination probability of slate position
    ``j``; it must have at least as many entries as the slates it scores.
    """

    item_factors: np.ndarray
    item_bias: np.ndarray
    offset: float
    user_factors: np.ndarray
    position_bias: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.item_factors.shape[1])

    def attraction(self, preference: np.ndarray) -> np.ndarray:
        """Return click probabilities of examined items, ``(..., n_items)`` for ``(..., dim)``."""
        logits = np.asarray(preference) @ self.item_factors.T + self.item_bias + self.offset
        return _sigmoid(logits)

    def item_attraction(self, preference: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Return the attraction of selected items: ``(B, s)`` for preferences ``(B, dim)``.

        This gathers only the ``items`` columns, so it costs ``B * s * dim``
        instead of the ``B * n_items * dim`` of :meth:`attraction`.
        """
        items = np.asarray(items, dtype=np.int64)
        factors = self.item_factors[items]
        logits = np.einsum("bsd,bd->bs", factors, np.asarray(preference))
        return _sigmoid(logits + self.item_bias[items] + self.offset)

    def examination(self, slate_size: int) -> np.ndarray:
        """Return the examination probabilities of the first ``slate_size`` positions."""
        if self.position_bias.shape[0] < slate_size:
            raise ValueError(
                f"the response model has position bias for {self.position_bias.shape[0]} "
                f"positions, fewer than slate_size={slate_size}; build it with more positions"
            )
        return np.asarray(self.position_bias[:slate_size], dtype=np.float64)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(expit(logits), dtype=np.float64)
