"""Reward models that value a simulated user's clicks as clicks, ratings, purchases or revenue.

MovieLens and most public logs record neither purchases nor prices, so the
purchase probabilities and prices here are synthetic: drawn once per item from
fixed distributions with a seed. They make the reward types differ in a
controlled way; they are not estimates of any real shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from metarec.errors import ConfigError

RewardKind = Literal["click", "rating", "purchase", "revenue"]
REWARD_KINDS: tuple[str, ...] = get_args(RewardKind)

MIN_RATING = 1.0
MAX_RATING = 5.0


@dataclass(frozen=True)
class RewardModel:
    """The reward of each clicked item.

    - ``click``: 1 per click.
    - ``rating``: the star rating of a clicked item, ``1 + 4 * attraction``
      (a user rates an item higher the more it attracts them; no rating noise).
    - ``purchase``: 1 when a clicked item is bought, which happens with
      probability ``purchase_probability[i]``.
    - ``revenue``: ``price[i]`` for every bought item.
    """

    kind: RewardKind
    purchase_probability: np.ndarray
    price: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise ConfigError(
                f"unknown reward type {self.kind!r}; choose one of {', '.join(REWARD_KINDS)}"
            )

    @classmethod
    def synthetic(cls, kind: str, n_items: int, seed: int = 0) -> RewardModel:
        """Draw purchase probabilities from Beta(2, 8) (mean 0.2) and prices from LogNormal(3, 0.5).

        The draws depend only on ``n_items`` and ``seed``, so every reward type
        of one catalog uses the same synthetic shop.
        """
        if kind not in REWARD_KINDS:
            raise ConfigError(
                f"unknown reward type {kind!r}; choose one of {', '.join(REWARD_KINDS)}"
            )
        rng = np.random.default_rng(seed)
        purchase = rng.beta(2.0, 8.0, size=n_items)
        price = rng.lognormal(3.0, 0.5, size=n_items)
        return cls(kind, purchase, price)  # type: ignore[arg-type]

    def click_value(self, attraction: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Return the expected reward of a click on each of ``items``, given their attraction."""
        if self.kind == "click":
            return np.ones_like(attraction)
        if self.kind == "rating":
            return MIN_RATING + (MAX_RATING - MIN_RATING) * attraction
        purchase = self.purchase_probability[items]
        if self.kind == "purchase":
            return purchase
        return purchase * self.price[items]

    def realised(
        self,
        clicked: np.ndarray,
        attraction: np.ndarray,
        items: np.ndarray,
        purchase_draws: np.ndarray,
    ) -> np.ndarray:
        """Return the reward of each slate position, from clicks and uniform purchase draws."""
        if self.kind == "click":
            return clicked.astype(np.float64)
        if self.kind == "rating":
            return np.where(clicked, MIN_RATING + (MAX_RATING - MIN_RATING) * attraction, 0.0)
        bought = clicked & (purchase_draws < self.purchase_probability[items])
        if self.kind == "purchase":
            return bought.astype(np.float64)
        return np.where(bought, self.price[items], 0.0)
