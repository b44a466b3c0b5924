"""Estimate the examination curve ``1 / (1 + j) ** eta`` from logs of a uniform-random policy.

Under a uniform-random logging policy the item shown at each position is
independent of the position, so the click-through rate at position ``j`` is
``c * examination[j]`` for one constant ``c``. The Open Bandit Dataset's
``random`` folders log such a policy with 3 positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from metarec.errors import DataError

MAX_ETA = 5.0


@dataclass(frozen=True)
class PositionBiasEstimate:
    """A fitted exponent with its per-position counts (position 0 is the first slot)."""

    eta: float
    low: float
    high: float
    impressions: np.ndarray
    clicks: np.ndarray

    @property
    def click_rates(self) -> np.ndarray:
        return self.clicks / np.maximum(self.impressions, 1)


def estimate_position_eta(
    positions: np.ndarray, clicks: np.ndarray, *, resamples: int = 1000, seed: int = 0
) -> PositionBiasEstimate:
    """Fit ``eta`` by maximum likelihood with a percentile bootstrap 95% interval.

    ``positions`` are 0-based slot indices and ``clicks`` 0/1 outcomes of
    impressions logged by a uniform-random policy.
    """
    positions = np.asarray(positions, dtype=np.int64)
    clicks = np.asarray(clicks, dtype=np.int64)
    n_positions = int(positions.max()) + 1
    impressions = np.bincount(positions, minlength=n_positions)
    clicked = np.bincount(positions, weights=clicks, minlength=n_positions)
    eta = _fit_eta(impressions, clicked)
    rng = np.random.default_rng(seed)
    draws = [
        _fit_eta(impressions, rng.binomial(impressions, clicked / np.maximum(impressions, 1)))
        for _ in range(resamples)
    ]
    low, high = np.quantile(draws, [0.025, 0.975])
    return PositionBiasEstimate(eta, float(low), float(high), impressions, clicked)


def _fit_eta(impressions: np.ndarray, clicks: np.ndarray) -> float:
    weights = np.log1p(np.arange(impressions.shape[0], dtype=np.float64))

    def negative_log_likelihood(eta: float) -> float:
        # For a fixed eta the best constant c is total clicks / sum(n_j * exam_j).
        exam = np.exp(-eta * weights)
        rate = np.clip(clicks.sum() / np.sum(impressions * exam) * exam, 1e-12, 1 - 1e-12)
        return float(-np.sum(clicks * np.log(rate) + (impressions - clicks) * np.log1p(-rate)))

    result = minimize_scalar(negative_log_likelihood, bounds=(0.0, MAX_ETA), method="bounded")
    return float(result.x)


def read_open_bandit_random(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read 0-based positions and clicks of every campaign CSV under ``folder/random``."""
    files = sorted((Path(folder) / "random").glob("*/*.csv"))
    files = [path for path in files if path.name != "item_context.csv"]
    if not files:
        raise DataError(
            "no campaign CSV found under random/",
            path=folder,
            fix="point at the open-bandit-dataset-small folder",
        )
    positions, clicks = [], []
    for path in files:
        table = pd.read_csv(path, usecols=["position", "click"])
        positions.append(table["position"].to_numpy(np.int64) - 1)
        clicks.append(table["click"].to_numpy(np.int64))
    return np.concatenate(positions), np.concatenate(clicks)
