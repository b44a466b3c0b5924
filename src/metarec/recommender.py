"""The interface shared by the meta-RL agent and every baseline."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from metarec.session import Session


class Recommender(ABC):
    """Scores every item of the catalog for a batch of user sessions.

    Subclasses implement :meth:`score`. :meth:`recommend` removes the items
    already in a session and returns the best ``k`` item indices.
    """

    name: str = "recommender"

    @abstractmethod
    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        """Return a ``(len(sessions), n_items)`` float32 array; higher is better."""

    def recommend(self, sessions: Sequence[Session], k: int) -> np.ndarray:
        """Return the top ``k`` item indices per session, best first, shown items excluded."""
        scores = self.score(sessions)
        return top_k(mask_shown(scores, sessions), k)


def mask_shown(scores: np.ndarray, sessions: Sequence[Session]) -> np.ndarray:
    """Set the scores of items already in each session to -inf, in place."""
    for row, session in enumerate(sessions):
        scores[row, session.shown()] = -np.inf
    return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the indices of the ``k`` highest scores per row, best first.

    Ties are broken by the lower item index so that rankings are reproducible.
    """
    k = min(k, scores.shape[1])
    # Stable sort on the negated scores keeps the lower index first among equal scores.
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else None
    if candidates is None:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    threshold = np.take_along_axis(scores, candidates, axis=1).min(axis=1, keepdims=True)
    ranked = np.empty((scores.shape[0], k), dtype=np.int64)
    for row in range(scores.shape[0]):
        # Every item scoring at least the k-th best competes, so ties at the cut go by index.
        pool = np.flatnonzero(scores[row] >= threshold[row])
        order = np.argsort(-scores[row, pool], kind="stable")[:k]
        ranked[row] = pool[order]
    return ranked
