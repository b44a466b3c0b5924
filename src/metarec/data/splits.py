"""User splits and support/query cuts shared by every protocol."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from metarec.data.interactions import InteractionLog

TEST_BUCKETS = (0, 1)
VALIDATION_BUCKETS = (2,)


def user_bucket(user_id: str) -> int:
    """Return the stable hash bucket 0..9 of an original user id."""
    return int(hashlib.sha1(str(user_id).encode()).hexdigest(), 16) % 10


@dataclass(frozen=True)
class UserSplit:
    """Disjoint user indices: training users are trained on, the others never are."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def split_users(log: InteractionLog) -> UserSplit:
    """Split users by ``sha1(user_id) % 10``: buckets 0-1 test, 2 validation, 3-9 training."""
    buckets = np.array([user_bucket(user_id) for user_id in log.user_ids], dtype=np.int64)
    test = np.flatnonzero(np.isin(buckets, TEST_BUCKETS))
    valid = np.flatnonzero(np.isin(buckets, VALIDATION_BUCKETS))
    train = np.flatnonzero(~np.isin(buckets, TEST_BUCKETS + VALIDATION_BUCKETS))
    return UserSplit(train=train, valid=valid, test=test)


@dataclass(frozen=True)
class FewShotTask:
    """One evaluation user cut into the first ``K`` interactions and the rest."""

    user: int
    support: np.ndarray
    query: np.ndarray


def fewshot_tasks(log: InteractionLog, users: np.ndarray, shots: int) -> list[FewShotTask]:
    """Cut each user into support (first ``shots`` items) and query (the rest).

    Users whose query would be empty are left out; callers log how many.
    """
    tasks = []
    for user in users:
        sequence = log.user_items(int(user))
        if sequence.shape[0] > shots:
            tasks.append(FewShotTask(int(user), sequence[:shots], sequence[shots:]))
    return tasks
