"""HR@10, NDCG@10 and Recall@20 on hand-made rankings with values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metarec.evaluation.metrics import hit_matrix, ranking_metrics

# Item ids 100..124 ranked best first: rank r (1-based) is item 99 + r.
RANKING = np.arange(100, 125)


def item_at(rank: int) -> int:
    return int(RANKING[rank - 1])


def metrics_for(query: list[int]) -> dict[str, float]:
    """Return the metrics of one user ranked by RANKING."""
    result = ranking_metrics(RANKING[None, :], [np.array(query)])
    return {name: float(values[0]) for name, values in result.items()}


def discount(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


def test_hit_at_rank_one() -> None:
    metrics = metrics_for([item_at(1)])
    assert metrics["hr@10"] == 1.0
    assert metrics["ndcg@10"] == pytest.approx(1.0)
    assert metrics["recall@20"] == 1.0


def test_hit_at_rank_three() -> None:
    metrics = metrics_for([item_at(3)])
    assert metrics["hr@10"] == 1.0
    # DCG = 1 / log2(4) = 0.5 and the ideal DCG of one relevant item is 1.
    assert metrics["ndcg@10"] == pytest.approx(0.5)
    assert metrics["recall@20"] == 1.0


def test_two_items_ranked_first_and_second() -> None:
    metrics = metrics_for([item_at(2), item_at(1)])
    assert metrics["ndcg@10"] == pytest.approx(1.0)
    assert metrics["recall@20"] == 1.0


def test_partial_hits_in_three_item_query() -> None:
    # Ranks 2 and 11 are relevant, and rank 11 lies outside the top 10.
    metrics = metrics_for([item_at(2), item_at(11), 999])
    ideal = 1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(4)
    assert metrics["hr@10"] == 1.0
    assert metrics["ndcg@10"] == pytest.approx((1.0 / math.log2(3)) / ideal)
    assert metrics["recall@20"] == pytest.approx(2.0 / 3.0)


def test_hit_beyond_top_ten() -> None:
    metrics = metrics_for([item_at(11)])
    assert metrics["hr@10"] == 0.0
    assert metrics["ndcg@10"] == 0.0
    assert metrics["recall@20"] == 1.0


def test_hit_beyond_top_twenty_ignored() -> None:
    metrics = metrics_for([item_at(21)])
    assert metrics["hr@10"] == 0.0
    assert metrics["ndcg@10"] == 0.0
    assert metrics["recall@20"] == 0.0


def test_no_hits() -> None:
    metrics = metrics_for([1, 2, 3])
    assert metrics["hr@10"] == 0.0
    assert metrics["ndcg@10"] == 0.0
    assert metrics["recall@20"] == 0.0


def test_large_query_all_top_twenty_hit() -> None:
    # 30 relevant items: the whole top 20 plus 10 items that are not ranked.
    query = [item_at(rank) for rank in range(1, 21)] + list(range(500, 510))
    metrics = metrics_for(query)
    assert metrics["hr@10"] == 1.0
    # The ideal DCG covers min(30, 10) = 10 positions, all filled.
    assert metrics["ndcg@10"] == pytest.approx(1.0)
    assert metrics["recall@20"] == pytest.approx(1.0)


def test_large_query_hits_only_ranks_11_to_20() -> None:
    query = [item_at(rank) for rank in range(11, 21)] + list(range(500, 520))
    metrics = metrics_for(query)
    assert metrics["hr@10"] == 0.0
    assert metrics["ndcg@10"] == 0.0
    # 10 hits over min(30, 20) = 20.
    assert metrics["recall@20"] == pytest.approx(0.5)


def test_twelve_item_query_ideal_over_ten() -> None:
    # Hits at ranks 1 and 10 of a 12-item query: the ideal DCG sums 10 discounts.
    query = [item_at(1), item_at(10), *range(500, 510)]
    metrics = metrics_for(query)
    ideal = sum(discount(rank) for rank in range(1, 11))
    assert metrics["ndcg@10"] == pytest.approx((discount(1) + discount(10)) / ideal)
    assert metrics["recall@20"] == pytest.approx(2.0 / 12.0)


def test_batch_rows_independent() -> None:
    ranked = np.stack([RANKING, RANKING[::-1]])
    queries = [np.array([item_at(3)]), np.array([item_at(3)])]
    result = ranking_metrics(ranked, queries)
    # Reversed, the 25-item ranking puts item_at(3) at rank 23, outside the top 20.
    np.testing.assert_allclose(result["ndcg@10"], [0.5, 0.0])
    np.testing.assert_allclose(result["recall@20"], [1.0, 0.0])
    np.testing.assert_allclose(result["hr@10"], [1.0, 0.0])


def test_metric_names_and_shapes() -> None:
    ranked = np.tile(RANKING, (3, 1))
    result = ranking_metrics(ranked, [np.array([100])] * 3)
    assert sorted(result) == ["hr@10", "ndcg@10", "recall@20"]
    for values in result.values():
        assert values.shape == (3,)


def test_no_users_gives_empty_arrays() -> None:
    result = ranking_metrics(np.zeros((0, 20), dtype=np.int64), [])
    for values in result.values():
        assert values.shape == (0,)


def test_hit_matrix_marks_relevant_ranks() -> None:
    hits = hit_matrix(np.array([[5, 6, 7, 8]]), [np.array([8, 6, 42])])
    np.testing.assert_array_equal(hits, [[False, True, False, True]])


def test_short_ranking_rejected() -> None:
    with pytest.raises(ValueError, match="at least 20 items; got 19"):
        ranking_metrics(RANKING[None, :19], [np.array([100])])


def test_empty_query_rejected() -> None:
    queries = [np.array([100]), np.array([], dtype=np.int64)]
    with pytest.raises(ValueError, match="every query must hold at least one item"):
        ranking_metrics(np.tile(RANKING, (2, 1)), queries)
