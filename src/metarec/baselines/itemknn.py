"""Item-based k-nearest neighbours with cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from metarec.baselines.profile import profile_matrix
from metarec.recommender import Recommender
from metarec.session import Session


class ItemKNN(Recommender):
    """Scores an item by the summed cosine similarity to the items the user chose.

    ``sim(i, j) = c_ij / (sqrt(n_i * n_j) + shrink)`` with co-occurrence
    counts ``c`` over training users; each item keeps its ``neighbors`` most
    similar items (0 keeps all). Popularity breaks ties between items with
    equal similarity, so a user with no overlap still gets a sensible list.
    """

    name = "ItemKNN"

    def __init__(self, neighbors: int = 100, shrink: float = 0.0) -> None:
        self.neighbors = neighbors
        self.shrink = shrink

    def fit(self, train_matrix: sp.csr_matrix) -> ItemKNN:
        # NOTE: the similarity matrix is dense (n_items^2 floats); fine up to a few 10k items.
        matrix = sp.csr_matrix(train_matrix, dtype=np.float32)
        cooccurrence = np.asarray((matrix.T @ matrix).todense(), dtype=np.float32)
        counts = np.diag(cooccurrence).copy()
        norms = np.sqrt(np.outer(counts, counts)) + self.shrink
        similarity = np.divide(
            cooccurrence, norms, out=np.zeros_like(cooccurrence), where=norms > 0
        )
        np.fill_diagonal(similarity, 0.0)
        if 0 < self.neighbors < similarity.shape[0]:
            cut = np.argpartition(-similarity, self.neighbors - 1, axis=0)[self.neighbors :]
            np.put_along_axis(similarity, cut, 0.0, axis=0)
        self.similarity_ = similarity
        popularity = counts / max(float(counts.max()), 1.0)
        self.tie_breaker_ = (1e-6 * popularity).astype(np.float32)
        return self

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        profiles = profile_matrix(sessions, self.similarity_.shape[0])
        return np.asarray(profiles @ self.similarity_, dtype=np.float32) + self.tie_breaker_
