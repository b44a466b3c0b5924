"""Turn a loaded interaction table into an :class:`InteractionLog`.

Steps, in order: sort each user's interactions by time, drop repeated (user, item)
pairs, apply the rating threshold, then the k-core filter. Ids map to contiguous
indices in sorted order of the id strings.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from metarec.data.interactions import InteractionLog
from metarec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def preprocess(
    frame: pd.DataFrame,
    *,
    name: str = "dataset",
    rating_threshold: float | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
) -> InteractionLog:
    """Build an InteractionLog from ``user``, ``item`` and optional ``rating``, ``timestamp``.

    Each user's interactions are ordered by timestamp. Ties are broken by the hex digest
    ``sha1(f"{user}:{item}")``, so the order does not depend on the row order of the file.
    Without a timestamp column the file order is kept. Of repeated (user, item) pairs only
    the first in that order is kept. ``rating_threshold`` keeps ratings ``>=`` the
    threshold. The k-core filter then removes users and items with fewer interactions
    than the minimums, repeating until no more rows are removed.
    """
    _check_frame(frame, rating_threshold, min_user_interactions, min_item_interactions)
    users = frame["user"].astype(str).to_numpy(dtype=object)
    items = frame["item"].astype(str).to_numpy(dtype=object)
    user_codes, user_uniques = pd.factorize(users, sort=True)
    item_codes, item_uniques = pd.factorize(items, sort=True)
    timestamps = _float_column(frame, "timestamp")
    ratings = _float_column(frame, "rating")

    rows = _chronological_order(users, items, user_codes, timestamps)
    rows = _drop_repeated_pairs(rows, user_codes, item_codes)
    if rating_threshold is not None and ratings is not None:
        rows = _apply_rating_threshold(rows, ratings, rating_threshold)
    rows = _k_core(rows, user_codes, item_codes, min_user_interactions, min_item_interactions)

    log = _build_log(
        rows,
        user_codes=user_codes,
        item_codes=item_codes,
        user_uniques=np.asarray(user_uniques, dtype=object),
        item_uniques=np.asarray(item_uniques, dtype=object),
        ratings=ratings,
        timestamps=timestamps,
        name=name,
    )
    logger.info(
        "Preprocessed %s: %d users, %d items, %d interactions",
        name,
        log.n_users,
        log.n_items,
        log.n_interactions,
    )
    return log


def _check_frame(
    frame: pd.DataFrame, rating_threshold: float | None, min_user: int, min_item: int
) -> None:
    missing = [column for column in ("user", "item") if column not in frame.columns]
    if missing:
        raise DataError(
            f"interaction table is missing columns {missing}; found columns {list(frame.columns)}",
            fix="Load the data with metarec.data.loaders.load_interactions",
        )
    if frame.empty:
        raise DataError("interaction table is empty", fix="Load a file with interactions")
    if frame[["user", "item"]].isna().to_numpy().any():
        raise DataError("interaction table has missing user or item ids", fix="Drop those rows")
    if rating_threshold is not None and "rating" not in frame.columns:
        raise DataError(
            f"rating_threshold={rating_threshold} needs a rating column, but the data has none",
            fix="Drop the rating threshold for data without ratings",
        )
    for option, value in (("min_user_interactions", min_user), ("min_item_interactions", min_item)):
        if value < 0:
            raise ConfigError(f"{option} must be >= 0, got {value}")


def _float_column(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    if column not in frame.columns:
        return None
    try:
        values = frame[column].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"column {column!r} is not numeric ({error})",
            fix="Load the data with metarec.data.loaders.load_interactions",
        ) from error
    if np.isnan(values).any():
        raise DataError(f"column {column!r} has missing values", fix="Drop or fill those rows")
    return values


def _chronological_order(
    users: np.ndarray, items: np.ndarray, user_codes: np.ndarray, timestamps: np.ndarray | None
) -> np.ndarray:
    """Return row positions grouped by user code, each user's rows earliest first."""
    if timestamps is None:
        return np.argsort(user_codes, kind="stable")
    ties = _tie_ranks(users, items, user_codes, timestamps)
    # np.lexsort sorts by the last key first and is stable.
    return np.lexsort((ties, timestamps, user_codes))


def _tie_ranks(
    users: np.ndarray, items: np.ndarray, user_codes: np.ndarray, timestamps: np.ndarray
) -> np.ndarray:
    """Rank rows that share (user, timestamp) with another row by their SHA-1 hex digest.

    Only tied rows are hashed, and the rank of every other row stays 0 because its
    position is already fixed by (user, timestamp).
    """
    keys = pd.DataFrame({"user": user_codes, "timestamp": timestamps})
    tied = keys.duplicated(keep=False).to_numpy()
    ranks = np.zeros(len(users), dtype=np.int64)
    if not tied.any():
        return ranks
    digests = [
        hashlib.sha1(f"{user}:{item}".encode()).hexdigest()
        for user, item in zip(users[tied], items[tied], strict=True)
    ]
    ranks[tied] = np.unique(np.array(digests), return_inverse=True)[1]
    return ranks


def _drop_repeated_pairs(
    rows: np.ndarray, user_codes: np.ndarray, item_codes: np.ndarray
) -> np.ndarray:
    pairs = pd.DataFrame({"user": user_codes[rows], "item": item_codes[rows]})
    first = ~pairs.duplicated(keep="first").to_numpy()
    dropped = len(rows) - int(first.sum())
    if dropped:
        logger.info("Dropped %d repeated (user, item) pairs, keeping the first of each", dropped)
    return rows[first]


def _apply_rating_threshold(rows: np.ndarray, ratings: np.ndarray, threshold: float) -> np.ndarray:
    passes = ratings[rows] >= threshold
    if not passes.any():
        highest = float(ratings[rows].max())
        raise DataError(
            f"rating_threshold={threshold} removed all {len(rows)} interactions "
            f"(highest rating {highest:g})",
            fix=f"Lower rating_threshold to at most {highest:g}",
        )
    logger.info(
        "Rating threshold %g dropped %d of %d interactions",
        threshold,
        len(rows) - int(passes.sum()),
        len(rows),
    )
    return rows[passes]


def _k_core(
    rows: np.ndarray,
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    min_user: int,
    min_item: int,
) -> np.ndarray:
    """Remove users and items below their minimum counts, repeating until nothing changes."""
    if min_user <= 1 and min_item <= 1:
        return rows
    start = len(rows)
    rounds = 0
    while True:
        rounds += 1
        before = len(rows)
        rows = _filter_by_count(rows, user_codes, min_user, "min_user_interactions", rounds)
        rows = _filter_by_count(rows, item_codes, min_item, "min_item_interactions", rounds)
        if len(rows) == before:
            break
    logger.info(
        "k-core filter (users >= %d, items >= %d) dropped %d interactions in %d rounds",
        min_user,
        min_item,
        start - len(rows),
        rounds,
    )
    return rows


def _filter_by_count(
    rows: np.ndarray, codes: np.ndarray, minimum: int, option: str, rounds: int
) -> np.ndarray:
    row_codes = codes[rows]
    counts = np.bincount(row_codes)
    remaining = rows[counts[row_codes] >= minimum]
    if len(remaining) == 0:
        raise DataError(
            f"{option}={minimum} removed all interactions "
            f"(k-core filter, round {rounds}, {len(rows)} interactions before)",
            fix=f"Lower {option}",
        )
    return remaining


def _build_log(
    rows: np.ndarray,
    *,
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    user_uniques: np.ndarray,
    item_uniques: np.ndarray,
    ratings: np.ndarray | None,
    timestamps: np.ndarray | None,
    name: str,
) -> InteractionLog:
    """Renumber the kept users and items contiguously and pack rows by user.

    ``rows`` is grouped by user code, and the codes follow sorted id order, so the
    renumbered users stay grouped and sorted.
    """
    remaining_users, user_index = np.unique(user_codes[rows], return_inverse=True)
    remaining_items, item_index = np.unique(item_codes[rows], return_inverse=True)
    counts = np.bincount(user_index, minlength=len(remaining_users))
    indptr = np.zeros(len(remaining_users) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return InteractionLog(
        user_ids=tuple(str(user) for user in user_uniques[remaining_users]),
        item_ids=tuple(str(item) for item in item_uniques[remaining_items]),
        indptr=indptr,
        items=item_index.astype(np.int64),
        ratings=None if ratings is None else ratings[rows],
        timestamps=None if timestamps is None else timestamps[rows],
        name=name,
    )
