"""Per-user sessions built from feedback events, kept in memory for real-time adaptation."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from metarec.serving.store import EVENT_TYPES, StoredEvent
from metarec.session import CLICK, HISTORY, SKIP, Session

POSITIVE_EVENTS = {"click": CLICK, "purchase": CLICK}


def event_token(event_type: str, value: float | None, rating_threshold: float) -> int:
    """Return the feedback token of one event, as in the interactive-v1 protocol.

    Clicks and purchases are ``CLICK``, skips and impressions ``SKIP``, and a
    rating is ``HISTORY`` when it is at least ``rating_threshold``, else ``SKIP``.
    """
    if event_type in POSITIVE_EVENTS:
        return POSITIVE_EVENTS[event_type]
    if event_type in ("skip", "impression"):
        return SKIP
    if event_type == "rating":
        if value is None:
            raise ValueError("a rating event needs a numeric value; got None")
        return HISTORY if value >= rating_threshold else SKIP
    raise ValueError(f"unknown event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}")


@dataclass
class UserTokens:
    """One user's tokens by original item id: one token per item, at its first event."""

    item_ids: list[str] = field(default_factory=list)
    feedback: list[int] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)

    def add(self, item_id: str, token: int) -> None:
        """Append a token, or let a positive token replace an earlier ``SKIP`` of the item."""
        index = self.position.get(item_id)
        if index is None:
            self.position[item_id] = len(self.item_ids)
            self.item_ids.append(item_id)
            self.feedback.append(token)
        elif token != SKIP and self.feedback[index] == SKIP:
            self.feedback[index] = token

    def to_session(self, item_index: dict[str, int]) -> Session:
        """Return the session in model indices; items the model does not know are left out."""
        items, feedback = [], []
        for item_id, token in zip(self.item_ids, self.feedback, strict=True):
            index = item_index.get(item_id)
            if index is not None:
                items.append(index)
                feedback.append(token)
        return Session(np.array(items, dtype=np.int64), np.array(feedback, dtype=np.int64))


class UserSessions:
    """Thread-safe map from user id to :class:`UserTokens`, updated after every commit."""

    def __init__(self, rating_threshold: float) -> None:
        self.rating_threshold = rating_threshold
        self._users: dict[str, UserTokens] = {}
        self._lock = threading.Lock()

    def apply(self, events: Iterable[StoredEvent]) -> None:
        """Add committed events, in commit order, to their users' tokens."""
        with self._lock:
            for stored in events:
                tokens = self._users.setdefault(stored.user_id, UserTokens())
                tokens.add(
                    stored.item_id, event_token(stored.type, stored.value, self.rating_threshold)
                )

    def session(self, user_id: str, item_index: dict[str, int]) -> Session:
        """Return the user's session (empty for a user without events)."""
        with self._lock:
            tokens = self._users.get(user_id)
            if tokens is None:
                return Session.from_history(np.zeros(0, dtype=np.int64))
            return tokens.to_session(item_index)

    def user_ids(self) -> list[str]:
        with self._lock:
            return list(self._users)

    def forget(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._users)
