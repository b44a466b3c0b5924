"""Full-ranking metrics with binary relevance.

Denominators follow the fewshot-v1 protocol: NDCG@k divides by the ideal DCG
over ``min(|query|, k)`` positions and Recall@k divides hits by ``min(|query|, k)``,
so a perfect ranking scores 1 whatever the size of the query.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hit_matrix(ranked: np.ndarray, queries: Sequence[np.ndarray]) -> np.ndarray:
    """Return a boolean array: ``hits[u, r]`` is true when the item at rank ``r`` is relevant."""
    hits = np.zeros(ranked.shape, dtype=bool)
    for row, query in enumerate(queries):
        hits[row] = np.isin(ranked[row], query)
    return hits


def hit_rate(hits: np.ndarray, k: int) -> np.ndarray:
    """Return 1 per user with at least one relevant item in the top ``k``, else 0."""
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


def ndcg(hits: np.ndarray, query_sizes: np.ndarray, k: int) -> np.ndarray:
    """Return NDCG@k per user with binary gain."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discounts).sum(axis=1)
    ideal_lengths = np.minimum(query_sizes, k)
    ideal = np.cumsum(discounts)[ideal_lengths - 1]
    return dcg / ideal


def recall(hits: np.ndarray, query_sizes: np.ndarray, k: int) -> np.ndarray:
    """Return hits in the top ``k`` divided by ``min(|query|, k)`` per user."""
    return hits[:, :k].sum(axis=1) / np.minimum(query_sizes, k)


def ranking_metrics(ranked: np.ndarray, queries: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Return HR@10, NDCG@10 and Recall@20 per user for rankings of at least 20 items."""
    if ranked.shape[1] < 20:
        raise ValueError(f"rankings must hold at least 20 items; got {ranked.shape[1]}")
    sizes = np.array([len(query) for query in queries], dtype=np.int64)
    if sizes.size and sizes.min() < 1:
        raise ValueError("every query must hold at least one item")
    hits = hit_matrix(ranked[:, :20], queries)
    return {
        "hr@10": hit_rate(hits, 10),
        "ndcg@10": ndcg(hits, sizes, 10),
        "recall@20": recall(hits, sizes, 20),
    }
