"""Fit each baseline with its hyper-parameters chosen on validation users."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np

from metarec.baselines.ease import EASE
from metarec.baselines.itemknn import ItemKNN
from metarec.baselines.popularity import Popularity
from metarec.config import BaselineConfig, ProtocolConfig
from metarec.data.interactions import InteractionLog
from metarec.data.splits import UserSplit
from metarec.evaluation.selection import validation_score
from metarec.recommender import Recommender

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=Recommender)


def fit_baselines(
    log: InteractionLog,
    split: UserSplit,
    config: BaselineConfig,
    protocol: ProtocolConfig,
) -> dict[str, Recommender]:
    """Fit Popularity, ItemKNN and EASE on training users; tune on validation users."""
    train = log.to_csr(split.train)

    def score(model: Recommender) -> float:
        return validation_score(model, log, split.valid, protocol)["score"]

    popularity = Popularity().fit(train)
    knn = _select(
        "ItemKNN",
        itertools.product(config.knn_neighbors, config.knn_shrink),
        lambda params: ItemKNN(neighbors=params[0], shrink=params[1]).fit(train),
        score,
    )
    ease = _select("EASE", config.ease_lambdas, lambda l2: EASE(l2=l2).fit(train), score)
    return {"Popularity": popularity, "ItemKNN": knn, "EASE": ease}


ParamT = TypeVar("ParamT")


def _select(
    name: str,
    grid: Iterable[ParamT],
    build: Callable[[ParamT], ModelT],
    score: Callable[[Recommender], float],
) -> ModelT:
    best_model: ModelT | None = None
    best_score = -np.inf
    for params in grid:
        model = build(params)
        value = score(model)
        logger.debug("%s %s: validation score %.4f", name, params, value)
        if value > best_score:
            best_model, best_score = model, value
            best_params = params
    if best_model is None:
        raise ValueError(f"the {name} grid is empty; give at least one value")
    logger.info("%s: chose %s (validation score %.4f)", name, best_params, best_score)
    return best_model
