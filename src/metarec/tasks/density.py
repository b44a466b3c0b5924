"""A Gaussian-mixture model of user preference vectors, sized by BIC."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from sklearn.mixture import GaussianMixture

from metarec.tasks.generative import check_sample_size, check_vectors

logger = logging.getLogger(__name__)

CovarianceType = Literal["full", "tied", "diag", "spherical"]


class GaussianMixtureGenerator:
    """Gaussian mixture whose number of components minimises the BIC.

    ``fit`` tries 1 to ``max_components`` components (never more than the number of
    vectors) and keeps the one with the lowest Bayesian information criterion. The BIC of
    every candidate is kept in ``bic_``.
    """

    def __init__(
        self,
        max_components: int = 10,
        covariance_type: CovarianceType = "full",
        seed: int = 0,
        reg_covar: float = 1e-6,
    ) -> None:
        if max_components < 1:
            raise ValueError(f"max_components must be >= 1, got {max_components}")
        self.max_components = max_components
        self.covariance_type = covariance_type
        self.seed = seed
        self.reg_covar = reg_covar

    def fit(self, vectors: np.ndarray) -> GaussianMixtureGenerator:
        """Fit mixtures of 1..max_components components and keep the lowest-BIC one."""
        data = check_vectors(vectors)
        self.bic_: dict[int, float] = {}
        best: GaussianMixture | None = None
        for components in range(1, min(self.max_components, data.shape[0]) + 1):
            mixture = GaussianMixture(
                n_components=components,
                covariance_type=self.covariance_type,
                reg_covar=self.reg_covar,
                n_init=2,
                random_state=self.seed,
            ).fit(data)
            self.bic_[components] = float(mixture.bic(data))
            if best is None or self.bic_[components] < self.bic_[best.n_components]:
                best = mixture
        assert best is not None  # the loop runs at least once
        self.mixture_ = best
        self.n_components_ = int(best.n_components)
        self.dim_ = data.shape[1]
        logger.info("Gaussian mixture: BIC chose %d components", self.n_components_)
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` vectors in random component order, the same for the same seed."""
        n = check_sample_size(n)
        mixture = self._fitted()
        rng = np.random.default_rng(seed)
        components = rng.choice(self.n_components_, size=n, p=mixture.weights_)
        scales = _component_scales(mixture, self.dim_)
        noise = rng.standard_normal((n, self.dim_))
        offsets = np.einsum("nij,nj->ni", scales[components], noise)
        return np.asarray(mixture.means_[components] + offsets, dtype=np.float64)

    def _fitted(self) -> GaussianMixture:
        if not hasattr(self, "mixture_"):
            raise ValueError("the Gaussian mixture is not fitted. Call fit(vectors) first")
        return self.mixture_


def _component_scales(mixture: GaussianMixture, dim: int) -> np.ndarray:
    """Return ``(n_components, dim, dim)`` lower-triangular factors of each covariance."""
    covariances = np.asarray(mixture.covariances_, dtype=np.float64)
    count = int(mixture.n_components)
    if mixture.covariance_type == "full":
        return np.linalg.cholesky(covariances)
    if mixture.covariance_type == "tied":
        return np.broadcast_to(np.linalg.cholesky(covariances), (count, dim, dim))
    if mixture.covariance_type == "diag":
        return np.sqrt(covariances)[:, :, None] * np.eye(dim)
    return np.sqrt(covariances)[:, None, None] * np.eye(dim)
