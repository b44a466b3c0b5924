"""Turn sessions into the user x item profile rows that item-based models multiply."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from metarec.session import Session


def profile_matrix(sessions: Sequence[Session], n_items: int) -> sp.csr_matrix:
    """Return a binary matrix with one row per session: its history items and clicks.

    Skipped items are left out, so a baseline updates only on what the user chose.
    """
    rows, cols = [], []
    for row, session in enumerate(sessions):
        positives = np.unique(session.positives())
        rows.append(np.full(positives.shape[0], row))
        cols.append(positives)
    row_index = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col_index = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    data = np.ones(row_index.shape[0], dtype=np.float32)
    return sp.csr_matrix((data, (row_index, col_index)), shape=(len(sessions), n_items))
