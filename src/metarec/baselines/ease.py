"""EASE: a closed-form linear item-item autoencoder (Steck, WWW 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from metarec.baselines.profile import profile_matrix
from metarec.recommender import Recommender
from metarec.session import Session


class EASE(Recommender):
    """Scores items with ``B = I - P / diag(P)`` where ``P = (X^T X + lambda I)^-1``.

    The diagonal of ``B`` is zero, so an item never recommends itself. A user
    is a row of the history-plus-clicks profile, so clicks update the next slate.
    """

    name = "EASE"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    def fit(self, train_matrix: sp.csr_matrix) -> EASE:
        matrix = sp.csr_matrix(train_matrix, dtype=np.float64)
        gram = np.asarray((matrix.T @ matrix).todense())
        gram[np.diag_indices_from(gram)] += self.l2
        precision = scipy.linalg.inv(gram, overwrite_a=True)
        weights = -precision / np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        self.weights_ = weights.astype(np.float32)
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.tie_breaker_ = (1e-6 * counts / max(float(counts.max()), 1.0)).astype(np.float32)
        return self

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        profiles = profile_matrix(sessions, self.weights_.shape[0])
        return np.asarray(profiles @ self.weights_, dtype=np.float32) + self.tie_breaker_
