"""The interface shared by generative models of user preference vectors."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class PreferenceGenerator(Protocol):
    """A model fit on real users' preference vectors that samples virtual users.

    ``fit`` takes an ``(n_users, dim)`` array and returns the fitted model.
    ``sample(n, seed)`` returns an ``(n, dim)`` float64 array, the same for the same seed.
    """

    def fit(self, vectors: np.ndarray) -> PreferenceGenerator: ...

    def sample(self, n: int, seed: int) -> np.ndarray: ...


def check_vectors(vectors: np.ndarray, min_rows: int = 2) -> np.ndarray:
    """Return ``vectors`` as a float64 ``(n, dim)`` array, or raise ValueError if invalid."""
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected an (n_users, dim) array of vectors, got shape {array.shape}")
    if array.shape[0] < min_rows:
        raise ValueError(f"expected at least {min_rows} vectors, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise ValueError("vectors contain NaN or infinite values. Check the fitted user factors")
    return array


def check_sample_size(n: int) -> int:
    """Return ``n`` as an int, or raise ValueError when it is not a positive count."""
    if int(n) != n or n < 1:
        raise ValueError(f"sample size must be a positive integer, got {n!r}")
    return int(n)
