"""Most-popular items, counted on training users."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from metarec.recommender import Recommender
from metarec.session import Session


class Popularity(Recommender):
    """Ranks items by how many training users interacted with them.

    Feedback changes nothing but the shown-item mask: a clicked item is
    never shown again, and the order of the rest stays the same.
    """

    name = "Popularity"

    def fit(self, train_matrix: sp.csr_matrix) -> Popularity:
        self.counts_ = np.asarray(train_matrix.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        return np.tile(self.counts_, (len(sessions), 1))
