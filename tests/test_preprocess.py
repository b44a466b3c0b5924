from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarec.data.interactions import InteractionLog
from metarec.data.loaders import load_interactions
from metarec.data.preprocess import preprocess
from metarec.errors import ConfigError, DataError


def make_frame(rows: list[tuple[object, ...]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame["user"] = frame["user"].astype(str)
    frame["item"] = frame["item"].astype(str)
    return frame


def user_item_ids(log: InteractionLog, user_id: str) -> list[str]:
    items = log.user_items(log.user_index[user_id])
    return [log.item_ids[i] for i in items]


def assert_logs_equal(left: InteractionLog, right: InteractionLog) -> None:
    assert left.user_ids == right.user_ids
    assert left.item_ids == right.item_ids
    np.testing.assert_array_equal(left.indptr, right.indptr)
    np.testing.assert_array_equal(left.items, right.items)
    np.testing.assert_array_equal(left.ratings, right.ratings)
    np.testing.assert_array_equal(left.timestamps, right.timestamps)


# Real data


@pytest.fixture(scope="module")
def recbole_log(ml100k_recbole_dir: Path) -> InteractionLog:
    return preprocess(load_interactions(ml100k_recbole_dir), name="ml-100k")


def test_ml100k_log_counts(recbole_log: InteractionLog) -> None:
    assert recbole_log.n_users == 943
    assert recbole_log.n_items == 1_682
    assert recbole_log.n_interactions == 100_000
    assert recbole_log.name == "ml-100k"
    assert recbole_log.indptr[0] == 0
    assert recbole_log.indptr[-1] == 100_000
    assert recbole_log.user_lengths().min() >= 20


def test_ml100k_log_sorted(recbole_log: InteractionLog) -> None:
    assert list(recbole_log.user_ids) == sorted(recbole_log.user_ids)
    assert list(recbole_log.item_ids) == sorted(recbole_log.item_ids)
    assert recbole_log.user_ids[:3] == ("1", "10", "100")
    timestamps = recbole_log.timestamps
    assert timestamps is not None
    for user in range(recbole_log.n_users):
        start, stop = recbole_log.indptr[user], recbole_log.indptr[user + 1]
        assert np.all(np.diff(timestamps[start:stop]) >= 0)


def test_ml100k_formats_same_log(recbole_log: InteractionLog, ml100k_raw_dir: Path) -> None:
    raw_log = preprocess(load_interactions(ml100k_raw_dir), name="ml-100k")
    assert_logs_equal(recbole_log, raw_log)


def test_row_order_does_not_matter(recbole_log: InteractionLog, ml100k_recbole_dir: Path) -> None:
    shuffled = load_interactions(ml100k_recbole_dir).sample(frac=1.0, random_state=7)
    assert_logs_equal(recbole_log, preprocess(shuffled, name="ml-100k"))


def test_ml100k_filters_shrink(ml100k_recbole_dir: Path) -> None:
    frame = load_interactions(ml100k_recbole_dir)
    log = preprocess(frame, rating_threshold=4, min_user_interactions=20, min_item_interactions=10)
    assert log.ratings is not None
    assert log.ratings.min() >= 4
    assert log.user_lengths().min() >= 20
    assert np.bincount(log.items).min() >= 10
    assert log.n_interactions < 55_375


# Order, ties and duplicates


def test_ties_broken_by_sha1() -> None:
    # sha1 hex digests: "u1:a" e2f779ec..., "u1:b" 9755a0ca..., "u1:c" 296dcdea...,
    # "u2:a" 3442ee87..., "u2:b" c8d217ce..., so the tied u1 items sort c, b, a and u2 a, b.
    rows = [
        ("u1", "a", 10),
        ("u2", "b", 20),
        ("u1", "b", 10),
        ("u1", "d", 5),
        ("u2", "a", 20),
        ("u1", "c", 10),
    ]
    frame = make_frame(rows, ["user", "item", "timestamp"])
    log = preprocess(frame)
    assert user_item_ids(log, "u1") == ["d", "c", "b", "a"]
    assert user_item_ids(log, "u2") == ["a", "b"]
    assert log.timestamps is not None
    assert log.timestamps.tolist() == [5, 10, 10, 10, 20, 20]
    reversed_log = preprocess(frame.iloc[::-1].reset_index(drop=True))
    assert_logs_equal(log, reversed_log)


def test_no_timestamp_keeps_file_order() -> None:
    frame = make_frame([("u1", "z"), ("u2", "b"), ("u1", "a"), ("u1", "m")], ["user", "item"])
    log = preprocess(frame)
    assert user_item_ids(log, "u1") == ["z", "a", "m"]
    assert log.timestamps is None
    assert log.ratings is None


def test_ids_sorted_as_strings() -> None:
    frame = make_frame([("9", "007"), ("10", "7"), ("9", "7")], ["user", "item"])
    log = preprocess(frame)
    assert log.user_ids == ("10", "9")
    assert log.item_ids == ("007", "7")
    assert log.indptr.tolist() == [0, 1, 3]
    assert log.items.tolist() == [1, 0, 1]


def test_duplicates_keep_earliest() -> None:
    rows = [("u1", "x", 1.0, 5), ("u1", "y", 3.0, 4), ("u1", "x", 4.0, 3), ("u2", "x", 2.0, 1)]
    log = preprocess(make_frame(rows, ["user", "item", "rating", "timestamp"]))
    assert user_item_ids(log, "u1") == ["x", "y"]
    assert log.ratings is not None
    assert log.ratings.tolist() == [4.0, 3.0, 2.0]
    assert log.n_interactions == 3


def test_duplicates_without_timestamp_keep_first() -> None:
    rows = [("u1", "x", 1.0), ("u1", "y", 3.0), ("u1", "x", 4.0)]
    log = preprocess(make_frame(rows, ["user", "item", "rating"]))
    assert log.ratings is not None
    assert log.ratings.tolist() == [1.0, 3.0]


def test_duplicates_logged(caplog: pytest.LogCaptureFixture) -> None:
    frame = make_frame([("u1", "x"), ("u1", "x")], ["user", "item"])
    with caplog.at_level(logging.INFO, logger="metarec.data.preprocess"):
        preprocess(frame)
    assert "Dropped 1 repeated (user, item) pairs" in caplog.text


# Rating threshold and k-core


def test_rating_threshold_inclusive() -> None:
    rows = [("u1", "a", 3.5), ("u1", "b", 4.0), ("u2", "a", 5.0)]
    log = preprocess(make_frame(rows, ["user", "item", "rating"]), rating_threshold=4.0)
    assert log.n_interactions == 2
    assert user_item_ids(log, "u1") == ["b"]
    assert log.item_ids == ("a", "b")


def test_rating_threshold_needs_ratings() -> None:
    frame = make_frame([("u1", "a")], ["user", "item"])
    with pytest.raises(DataError, match=r"rating_threshold=4 needs a rating column"):
        preprocess(frame, rating_threshold=4)


def test_rating_threshold_empties_log() -> None:
    frame = make_frame([("u1", "a", 3.0), ("u2", "a", 5.0)], ["user", "item", "rating"])
    with pytest.raises(DataError, match=r"rating_threshold=6 removed all 2 .*at most 5"):
        preprocess(frame, rating_threshold=6)


KCORE_ROWS = [
    ("u1", "a"),
    ("u1", "b"),
    ("u2", "a"),
    ("u2", "b"),
    ("u3", "b"),
    ("u3", "c"),
    ("u4", "c"),
]


def test_k_core_iterates_to_stable() -> None:
    # Round 1 removes u4 (1 item), then item c (only u3 left). Round 2 removes u3,
    # which now has only b. A single pass would have kept u3.
    frame = make_frame(KCORE_ROWS, ["user", "item"])
    log = preprocess(frame, min_user_interactions=2, min_item_interactions=2)
    assert log.user_ids == ("u1", "u2")
    assert log.item_ids == ("a", "b")
    assert log.indptr.tolist() == [0, 2, 4]


def test_k_core_user_only() -> None:
    frame = make_frame(KCORE_ROWS, ["user", "item"])
    log = preprocess(frame, min_user_interactions=2)
    assert log.user_ids == ("u1", "u2", "u3")
    assert log.item_ids == ("a", "b", "c")


def test_k_core_empties_on_users() -> None:
    frame = make_frame(KCORE_ROWS, ["user", "item"])
    with pytest.raises(DataError, match=r"min_user_interactions=3 removed all .*Lower min_user"):
        preprocess(frame, min_user_interactions=3)


def test_k_core_empties_on_items() -> None:
    frame = make_frame(KCORE_ROWS, ["user", "item"])
    with pytest.raises(DataError, match=r"min_item_interactions=4 removed all .*Lower min_item"):
        preprocess(frame, min_item_interactions=4)


def test_negative_minimum_rejected() -> None:
    frame = make_frame(KCORE_ROWS, ["user", "item"])
    with pytest.raises(ConfigError, match=r"min_item_interactions must be >= 0"):
        preprocess(frame, min_item_interactions=-1)


def test_missing_columns_rejected() -> None:
    with pytest.raises(DataError, match=r"is missing columns \['item'\]"):
        preprocess(pd.DataFrame({"user": ["u1"]}))
