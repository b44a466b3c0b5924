"""Item embeddings and a population prior over user vectors, learned from a training log.

The bandit baselines model a user's click probability as ``theta . x_i``.
The item vectors ``x_i`` come from a PureSVD factorisation (truncated SVD)
of the binary interaction matrix of training users, never from a
simulator's true parameters. ``X ~ U S V^T`` gives item vectors
``V S^(1/2)`` and user vectors ``U S^(1/2)``. One global factor then scales
the item vectors to a mean squared norm of 1 (and the user vectors by its
inverse, so every product stays the same), which keeps a ridge penalty
comparable across embedding sizes. The mean and covariance of the training
users' vectors form the prior a new user starts from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from metarec.data.interactions import InteractionLog

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemEmbeddings:
    """Item vectors ``(n_items, dim)`` and the Gaussian prior of user vectors.

    ``prior_mean`` and ``prior_covariance`` are the mean and covariance of
    the fitted vectors of the training users, in the same space as ``vectors``.
    """

    vectors: np.ndarray
    prior_mean: np.ndarray
    prior_covariance: np.ndarray

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2:
            raise ValueError(f"vectors must be (n_items, dim); got shape {self.vectors.shape}")
        dim = self.vectors.shape[1]
        if self.prior_mean.shape != (dim,):
            raise ValueError(f"prior_mean must have shape ({dim},); got {self.prior_mean.shape}")
        if self.prior_covariance.shape != (dim, dim):
            raise ValueError(
                f"prior_covariance must have shape ({dim}, {dim}); "
                f"got {self.prior_covariance.shape}"
            )

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def prior_precision(self) -> np.ndarray:
        """Return the inverse prior covariance, scaled to a mean eigenvalue of 1.

        With this scale a prior strength ``lambda`` adds as much to the trace of
        ``A`` as about ``lambda * dim`` observed items (their vectors have a mean
        squared norm of 1), just as a ridge penalty ``lambda * I`` does.
        """
        covariance = self.prior_covariance
        jitter = 1e-6 * max(float(np.trace(covariance)) / self.dim, 1e-12)
        precision = np.linalg.inv(covariance + jitter * np.eye(self.dim))
        return precision * (self.dim / float(np.trace(precision)))


def fit_item_embeddings(train_matrix: sp.csr_matrix, dim: int, *, seed: int = 0) -> ItemEmbeddings:
    """Fit PureSVD item vectors and the user prior on a binary user x item matrix.

    Rows without any interaction (users outside the training split, see
    :meth:`InteractionLog.to_csr`) are dropped before the factorisation, so
    they change nothing.
    """
    matrix = sp.csr_matrix(train_matrix, dtype=np.float64)
    matrix = matrix[np.diff(matrix.indptr) > 0]
    n_users, n_items = matrix.shape
    if not 1 <= dim < min(n_users, n_items):
        raise ValueError(
            f"embedding dim={dim} must lie in [1, {min(n_users, n_items)}), the smaller side "
            f"of the {n_users} x {n_items} training matrix; choose a smaller dim"
        )
    start = np.random.default_rng(seed).standard_normal(min(n_users, n_items))
    left, singular, right_t = svds(matrix, k=dim, v0=start)
    # svds guarantees neither the order of the singular values nor the signs, so fix both.
    order = np.argsort(-singular)
    left, singular, right = left[:, order], singular[order], right_t[order].T
    signs = np.where(right.sum(axis=0) < 0, -1.0, 1.0)
    root = np.sqrt(singular)
    item_vectors = right * signs * root
    user_vectors = left * signs * root
    scale = 1.0 / np.sqrt(np.mean(np.sum(item_vectors**2, axis=1)))
    item_vectors *= scale
    user_vectors /= scale
    logger.debug(
        "PureSVD on %d users x %d items, dim %d: top singular value %.3f",
        n_users,
        n_items,
        dim,
        singular[0],
    )
    return ItemEmbeddings(
        vectors=item_vectors,
        prior_mean=user_vectors.mean(axis=0),
        prior_covariance=np.cov(user_vectors, rowvar=False).reshape(dim, dim),
    )


def fit_log_embeddings(
    log: InteractionLog, train_users: np.ndarray, dim: int, *, seed: int = 0
) -> ItemEmbeddings:
    """Fit :func:`fit_item_embeddings` on the interactions of ``train_users`` only."""
    return fit_item_embeddings(log.to_csr(np.asarray(train_users)), dim, seed=seed)
