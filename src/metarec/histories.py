"""Read user histories from files and rank items for them with a saved agent."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metarec.checkpoint import Checkpoint
from metarec.data.loaders import load_interactions
from metarec.errors import DataError
from metarec.recommender import mask_shown, top_k
from metarec.session import CLICK, HISTORY, SKIP, Session

logger = logging.getLogger(__name__)

FEEDBACK_KEYS = (("items", HISTORY), ("clicks", CLICK), ("skips", SKIP))


@dataclass(frozen=True)
class UserHistory:
    """One user to rank for: the original id and the session built from the file."""

    user_id: str
    session: Session


def read_histories(
    path: Path, item_index: dict[str, int], *, ignore_unknown: bool = False
) -> list[UserHistory]:
    """Read JSONL (``{"user_id", "items"[, "clicks", "skips"]}``) or a CSV/TSV/Parquet table.

    Item ids are compared as strings. An id the model never saw is an error
    unless ``ignore_unknown`` drops it.
    """
    if not path.is_file():
        raise DataError("user history file not found", path=path, fix="check the path")
    dropped: list[str] = []
    if path.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        users = _read_jsonl(path, item_index, dropped if ignore_unknown else None)
    else:
        users = _read_table(path, item_index, dropped if ignore_unknown else None)
    if dropped:
        logger.warning(
            "dropped %d unknown item ids from %s (first: %s)", len(dropped), path, dropped[0]
        )
    if not users:
        raise DataError("no user histories found", path=path, fix="add at least one user")
    return users


def _read_jsonl(
    path: Path, item_index: dict[str, int], dropped: list[str] | None
) -> list[UserHistory]:
    users = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError("file is not valid UTF-8", path=path, fix="save it as UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"invalid JSON: {error.msg}", path=path, line=number) from None
        users.append(_parse_record(record, path, number, item_index, dropped))
    return users


def _parse_record(
    record: Any, path: Path, line: int, item_index: dict[str, int], dropped: list[str] | None
) -> UserHistory:
    if not isinstance(record, dict) or "user_id" not in record or "items" not in record:
        raise DataError(
            'each line must be an object with "user_id" and "items"',
            path=path,
            line=line,
            fix='for example {"user_id": "42", "items": ["50", "172"]}',
        )
    if isinstance(record["user_id"], (dict, list)) or record["user_id"] is None:
        raise DataError("user_id must be a string or a number", path=path, line=line)
    items: list[int] = []
    feedback: list[int] = []
    for key, kind in FEEDBACK_KEYS:
        values = record.get(key, [])
        if not isinstance(values, list):
            raise DataError(f'"{key}" must be a list of item ids', path=path, line=line)
        indices = _to_indices(values, item_index, path, line, dropped)
        items.extend(indices)
        feedback.extend([kind] * len(indices))
    session = Session(np.array(items, dtype=np.int64), np.array(feedback, dtype=np.int64))
    return UserHistory(str(record["user_id"]), session)


def _to_indices(
    values: list[Any],
    item_index: dict[str, int],
    path: Path,
    line: int | None,
    dropped: list[str] | None,
) -> list[int]:
    """Map item ids to indices; unknown ids go to ``dropped`` or, when it is None, raise."""
    indices = []
    for value in values:
        if isinstance(value, (dict, list)) or value is None:
            raise DataError(f"item id {value!r} must be a string or a number", path=path, line=line)
        index = item_index.get(str(value))
        if index is None:
            if dropped is not None:
                dropped.append(str(value))
                continue
            raise DataError(
                f"unknown item id {str(value)!r}: the model was not trained on it",
                path=path,
                line=line,
                fix="remove it, or pass --ignore-unknown to drop such ids",
            )
        indices.append(index)
    return indices


def _read_table(
    path: Path, item_index: dict[str, int], dropped: list[str] | None
) -> list[UserHistory]:
    frame = load_interactions(path, fmt="table")
    users = []
    for user_id, group in frame.groupby("user", sort=False):
        indices = _to_indices(list(group["item"]), item_index, path, None, dropped)
        users.append(
            UserHistory(str(user_id), Session.from_history(np.array(indices, dtype=np.int64)))
        )
    return users


def rank_histories(
    checkpoint: Checkpoint, users: list[UserHistory], top: int
) -> list[dict[str, Any]]:
    """Return one ``{"user_id", "items", "scores"}`` row per user, best first.

    Items already in a user's session are never returned.
    """
    rows = []
    sessions = [user.session for user in users]
    for start in range(0, len(users), 256):
        batch = sessions[start : start + 256]
        scores = mask_shown(checkpoint.agent.score(batch), batch)
        for offset, ranked in enumerate(top_k(scores, top)):
            user = users[start + offset]
            ranked = ranked[np.isfinite(scores[offset, ranked])]
            rows.append(
                {
                    "user_id": user.user_id,
                    "items": [checkpoint.item_ids[i] for i in ranked],
                    "scores": [round(float(scores[offset, i]), 6) for i in ranked],
                }
            )
    return rows
