"""The preprocessed interaction log that every model and protocol reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class InteractionLog:
    """Interactions grouped by user in chronological order, with contiguous indices.

    User ``u`` interacted with ``items[indptr[u]:indptr[u + 1]]``, earliest first.
    ``user_ids[u]`` and ``item_ids[i]`` are the original ids as strings, so every
    output can speak the ids of the source file.
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    indptr: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    name: str = "dataset"

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return int(self.items.shape[0])

    def user_items(self, user: int) -> np.ndarray:
        """Return the item indices of one user, earliest first."""
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def user_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {user_id: u for u, user_id in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.item_ids)}

    def fingerprint(self) -> str:
        """Return a SHA-1 digest of the ids and interactions, to tell two logs apart."""
        digest = hashlib.sha1()
        digest.update("\x1f".join(self.user_ids).encode())
        digest.update("\x1e".join(self.item_ids).encode())
        digest.update(np.ascontiguousarray(self.indptr, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.items, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def to_csr(self, users: np.ndarray | None = None) -> sp.csr_matrix:
        """Build a binary user x item matrix; rows of users not in ``users`` stay empty."""
        lengths = self.user_lengths()
        rows = np.repeat(np.arange(self.n_users), lengths)
        cols = self.items
        if users is not None:
            keep = np.isin(rows, users)
            rows, cols = rows[keep], cols[keep]
        data = np.ones(rows.shape[0], dtype=np.float32)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(self.n_users, self.n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix
