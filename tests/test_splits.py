"""User splits by SHA-1 bucket and the support/query cut of few-shot tasks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from metarec.data.interactions import InteractionLog
from metarec.data.splits import fewshot_tasks, split_users, user_bucket


def sha1_bucket(user_id: str) -> int:
    return int(hashlib.sha1(user_id.encode()).hexdigest(), 16) % 10


@pytest.mark.parametrize("user_id", ["0", "1", "42", "196", "user-a", "ユーザー"])
def test_bucket_matches_sha1(user_id: str) -> None:
    assert user_bucket(user_id) == sha1_bucket(user_id)


def test_bucket_known_values() -> None:
    # Worked out with hashlib: sha1("4") % 10 == 0, sha1("19") % 10 == 1, sha1("12") % 10 == 2.
    assert user_bucket("4") == 0
    assert user_bucket("19") == 1
    assert user_bucket("12") == 2
    assert user_bucket("1") == 3


def test_bucket_zero_padded_id_differs() -> None:
    # Ids are strings, so "007" and "7" hash apart (buckets 9 and 8).
    assert user_bucket("007") == 9
    assert user_bucket("7") == 8


def test_bucket_of_int_equals_string() -> None:
    assert user_bucket(7) == user_bucket("7")  # type: ignore[arg-type]


def test_split_by_bucket(build_log: Callable[..., InteractionLog]) -> None:
    user_ids = [str(number) for number in range(40)]
    log = build_log([[0]] * len(user_ids), user_ids=user_ids)
    split = split_users(log)
    buckets = [sha1_bucket(user_id) for user_id in user_ids]
    expected_test = [u for u, bucket in enumerate(buckets) if bucket in (0, 1)]
    expected_valid = [u for u, bucket in enumerate(buckets) if bucket == 2]
    expected_train = [u for u, bucket in enumerate(buckets) if bucket >= 3]
    assert split.test.tolist() == expected_test
    assert split.valid.tolist() == expected_valid
    assert split.train.tolist() == expected_train


def test_split_places_known_ids(build_log: Callable[..., InteractionLog]) -> None:
    log = build_log([[0]] * 4, user_ids=["4", "19", "12", "1"])
    split = split_users(log)
    assert split.test.tolist() == [0, 1]
    assert split.valid.tolist() == [2]
    assert split.train.tolist() == [3]


def test_split_disjoint_and_complete(build_log: Callable[..., InteractionLog]) -> None:
    user_ids = [f"user{number}" for number in range(200)]
    log = build_log([[0]] * len(user_ids), user_ids=user_ids)
    split = split_users(log)
    parts = [set(split.train.tolist()), set(split.valid.tolist()), set(split.test.tolist())]
    assert not parts[0] & parts[1]
    assert not parts[0] & parts[2]
    assert not parts[1] & parts[2]
    assert parts[0] | parts[1] | parts[2] == set(range(200))


def test_split_ml100k(ml100k_log: InteractionLog) -> None:
    split = split_users(ml100k_log)
    sizes = (len(split.train), len(split.valid), len(split.test))
    assert sum(sizes) == 943
    # Pinned so that a change to the hash or the bucket rule shows up here.
    assert sizes == (661, 94, 188)
    everyone = np.concatenate([split.train, split.valid, split.test])
    assert np.unique(everyone).shape[0] == 943


def test_fewshot_support_and_query(build_log: Callable[..., InteractionLog]) -> None:
    log = build_log([[4, 2, 9, 1, 7], [3, 0, 5, 6]], n_items=10)
    tasks = fewshot_tasks(log, np.array([0, 1]), shots=3)
    assert [task.user for task in tasks] == [0, 1]
    assert tasks[0].support.tolist() == [4, 2, 9]
    assert tasks[0].query.tolist() == [1, 7]
    assert tasks[1].support.tolist() == [3, 0, 5]
    assert tasks[1].query.tolist() == [6]


def test_fewshot_skips_short_users(build_log: Callable[..., InteractionLog]) -> None:
    # Users 1 and 2 have exactly K and fewer than K items, so their query would be empty.
    log = build_log([[0, 1, 2, 3], [0, 1, 2], [5], [6, 7, 8, 9]], n_items=10)
    tasks = fewshot_tasks(log, np.array([0, 1, 2, 3]), shots=3)
    assert [task.user for task in tasks] == [0, 3]


def test_fewshot_only_given_users(build_log: Callable[..., InteractionLog]) -> None:
    log = build_log([[0, 1], [2, 3], [4, 5]], n_items=6)
    tasks = fewshot_tasks(log, np.array([2, 0]), shots=1)
    assert [task.user for task in tasks] == [2, 0]
    assert tasks[0].support.tolist() == [4]
    assert tasks[0].query.tolist() == [5]
