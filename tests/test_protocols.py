"""fewshot-v1 and interactive-v1 on a tiny log, against results worked out by hand."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from metarec.data.interactions import InteractionLog
from metarec.errors import ConfigError
from metarec.evaluation.protocols import evaluate_fewshot, evaluate_interactive
from metarec.recommender import Recommender
from metarec.session import CLICK, HISTORY, SKIP, Session

N_ITEMS = 30
# With K = 2: user 0 has support [0, 5] and query [1, 7, 25]; user 1 has support [3, 4]
# and query [0, 1, 2]; user 2 has no query item; user 3 has support [29, 0] and query 1..8.
SEQUENCES = [
    [0, 5, 1, 7, 25],
    [3, 4, 0, 1, 2],
    [6, 8],
    [29, 0, 1, 2, 3, 4, 5, 6, 7, 8],
]


class FixedOrder(Recommender):
    """Ranks items by index, item 0 first, whatever the session contains."""

    name = "fixed-order"

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        return np.tile(-np.arange(N_ITEMS, dtype=np.float32), (len(sessions), 1))


class RecordingFixedOrder(FixedOrder):
    """FixedOrder that keeps each call's sessions and returned slates."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Session], np.ndarray]] = []

    def recommend(self, sessions: Sequence[Session], k: int) -> np.ndarray:
        slates = super().recommend(sessions, k)
        self.calls.append((list(sessions), slates.copy()))
        return slates


@pytest.fixture()
def log(build_log: Callable[..., InteractionLog]) -> InteractionLog:
    return build_log(SEQUENCES, n_items=N_ITEMS)


def ndcg_user0() -> float:
    # Ranking without support items 0 and 5: 1, 2, 3, 4, 6, 7, ...; hits at ranks 1 and 6.
    dcg = 1.0 + 1.0 / math.log2(7)
    ideal = 1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(4)
    return dcg / ideal


# fewshot-v1


def test_fewshot_per_user_metrics(log: InteractionLog) -> None:
    result = evaluate_fewshot(FixedOrder(), log, np.array([0, 1]), shots=2)
    np.testing.assert_allclose(result.per_user["ndcg@10"], [ndcg_user0(), 1.0])
    np.testing.assert_allclose(result.per_user["recall@20"], [2.0 / 3.0, 1.0])
    np.testing.assert_allclose(result.per_user["hr@10"], [1.0, 1.0])


def test_fewshot_mean_metrics(log: InteractionLog) -> None:
    result = evaluate_fewshot(FixedOrder(), log, np.array([0, 1]), shots=2)
    assert result.metrics["ndcg@10"] == pytest.approx((ndcg_user0() + 1.0) / 2)
    assert result.metrics["recall@20"] == pytest.approx((2.0 / 3.0 + 1.0) / 2)
    assert result.metrics["hr@10"] == pytest.approx(1.0)


def test_fewshot_counts_skipped_users(log: InteractionLog) -> None:
    result = evaluate_fewshot(FixedOrder(), log, np.array([0, 1, 2]), shots=2)
    assert result.shots == 2
    assert result.users == 2
    assert result.skipped_users == 1


def test_fewshot_rankings_exclude_support(log: InteractionLog) -> None:
    result = evaluate_fewshot(FixedOrder(), log, np.array([0, 1, 3]), shots=2, keep_items=20)
    expected_user0 = [1, 2, 3, 4, *range(6, 22)]
    assert result.rankings[0].tolist() == expected_user0
    for user in (0, 1, 3):
        support = SEQUENCES[user][:2]
        assert not np.isin(result.rankings[user], support).any()


def test_fewshot_keep_items_beyond_twenty(log: InteractionLog) -> None:
    result = evaluate_fewshot(FixedOrder(), log, np.array([0]), shots=2, keep_items=25)
    assert result.rankings[0].shape == (25,)
    assert result.metrics["ndcg@10"] == pytest.approx(ndcg_user0())


def test_fewshot_without_rankings_by_default(log: InteractionLog) -> None:
    result = evaluate_fewshot(FixedOrder(), log, np.array([0, 1]), shots=2)
    assert result.rankings == {}


def test_fewshot_all_users_skipped(log: InteractionLog) -> None:
    result = evaluate_fewshot(FixedOrder(), log, np.array([2]), shots=2)
    assert result.users == 0
    assert result.skipped_users == 1
    assert result.metrics == {}


# interactive-v1


def test_interactive_recall_and_curve(log: InteractionLog) -> None:
    result = evaluate_interactive(
        FixedOrder(), log, np.array([0, 1]), shots=2, rounds=3, slate_size=4
    )
    # User 0 is shown [1, 2, 3, 4], [6, 7, 8, 9], [10, 11, 12, 13]: clicks 1, 1, 0 of query size 3.
    # User 1 is shown [0, 1, 2, 5]: 3 clicks use up the query, so the episode ends.
    np.testing.assert_allclose(result.per_user_recall, [2.0 / 3.0, 1.0])
    assert result.recall == pytest.approx(5.0 / 6.0)
    assert result.clicks_per_round == pytest.approx([2.0, 0.5, 0.0])
    assert result.users == 2
    assert result.skipped_users == 0


def test_interactive_recall_denominator_caps(log: InteractionLog) -> None:
    # User 3 has 8 query items but only 1 x 2 can be shown, so 2 clicks give recall 1.
    result = evaluate_interactive(FixedOrder(), log, np.array([3]), shots=2, rounds=1, slate_size=2)
    assert result.recall == pytest.approx(1.0)
    assert result.clicks_per_round == pytest.approx([2.0])


def test_interactive_counts_skipped_users(log: InteractionLog) -> None:
    result = evaluate_interactive(
        FixedOrder(), log, np.array([0, 2]), shots=2, rounds=3, slate_size=4
    )
    assert result.users == 1
    assert result.skipped_users == 1


def test_interactive_no_tasks(log: InteractionLog) -> None:
    result = evaluate_interactive(FixedOrder(), log, np.array([2]), shots=2, rounds=3)
    assert result.users == 0
    assert result.recall == 0.0
    assert result.clicks_per_round == [0.0, 0.0, 0.0]


def test_interactive_slates_never_repeat(log: InteractionLog) -> None:
    recommender = RecordingFixedOrder()
    evaluate_interactive(recommender, log, np.array([0]), shots=2, rounds=3, slate_size=4)
    slates = [slates[0].tolist() for _, slates in recommender.calls]
    shown_items = [item for slate in slates for item in slate]
    assert slates == [[1, 2, 3, 4], [6, 7, 8, 9], [10, 11, 12, 13]]
    assert len(set(shown_items)) == len(shown_items)
    assert not set(shown_items) & {0, 5}


def test_interactive_feedback_in_session(log: InteractionLog) -> None:
    recommender = RecordingFixedOrder()
    evaluate_interactive(recommender, log, np.array([0]), shots=2, rounds=2, slate_size=4)
    second_round_session = recommender.calls[1][0][0]
    # Support [0, 5], then the slate [1, 2, 3, 4] in which only item 1 is in the query.
    assert second_round_session.items.tolist() == [0, 5, 1, 2, 3, 4]
    assert second_round_session.feedback.tolist() == [HISTORY, HISTORY, CLICK, SKIP, SKIP, SKIP]


def test_interactive_finished_user_not_asked(log: InteractionLog) -> None:
    recommender = RecordingFixedOrder()
    evaluate_interactive(recommender, log, np.array([0, 1]), shots=2, rounds=3, slate_size=4)
    sessions_per_round = [len(sessions) for sessions, _ in recommender.calls]
    # User 1 clicks its whole query in round 1 and drops out.
    assert sessions_per_round == [2, 1, 1]


def test_interactive_catalog_too_small(log: InteractionLog) -> None:
    # 2 + 10 x 3 = 32 items per user do not fit in 30.
    with pytest.raises(ConfigError, match=r"catalog contains only 30; lower protocol\.rounds"):
        evaluate_interactive(FixedOrder(), log, np.array([0]), shots=2, rounds=10, slate_size=3)


def test_interactive_catalog_exactly_full(log: InteractionLog) -> None:
    # 2 + 4 x 7 = 30 items fit exactly; user 3 clicks 1..8 in the first two rounds.
    result = evaluate_interactive(FixedOrder(), log, np.array([3]), shots=2, rounds=4, slate_size=7)
    assert result.clicks_per_round == pytest.approx([7.0, 1.0, 0.0, 0.0])
    assert result.recall == pytest.approx(1.0)
