"""The event store on SQLite and PostgreSQL, and the mapping from events to tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from metarec.errors import ConfigError
from metarec.serving.sessions import UserSessions, UserTokens, event_token
from metarec.serving.store import EventIdConflict, EventStore, StoredEvent
from metarec.session import CLICK, HISTORY, SKIP


def stored(event_id: str, user_id: str, item_id: str, kind: str, value=None) -> StoredEvent:
    return StoredEvent(event_id, user_id, item_id, kind, value, None, 1_700_000_000.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        opened = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    else:
        opened = EventStore(request.getfixturevalue("postgres_url"))
        with opened.engine.begin() as connection:
            connection.execute(text("DELETE FROM events"))
    yield opened
    opened.close()


def test_store_insert_skips_duplicate_ids(store: EventStore) -> None:
    first = store.insert([stored("a", "u", "1", "click"), stored("b", "u", "2", "skip")])
    again = store.insert(
        [
            stored("b", "u", "2", "skip"),
            stored("c", "u", "3", "click"),
            stored("c", "u", "3", "click"),
        ]
    )
    assert [e.event_id for e in first.inserted] == ["a", "b"]
    assert first.duplicates == 0
    assert [e.event_id for e in again.inserted] == ["c"]
    assert again.duplicates == 2
    assert [e.event_id for e in store.user_events("u")] == ["a", "b", "c"]


def test_store_rejects_conflicting_event_id(store: EventStore) -> None:
    store.insert([stored("e-1", "alice", "50", "click")])
    with pytest.raises(EventIdConflict, match="'e-1' is already used in the store") as caught:
        store.insert([stored("e-2", "bob", "50", "click"), stored("e-1", "bob", "50", "click")])
    assert caught.value.position == 1
    assert [event.event_id for event in store.user_events("bob")] == []
    with pytest.raises(EventIdConflict, match="earlier in the same batch"):
        store.insert([stored("e-3", "bob", "50", "click"), stored("e-3", "bob", "50", "skip")])
    assert store.user_events("bob") == []
    same = store.insert([stored("e-1", "alice", "50", "click")])
    assert (same.inserted, same.duplicates) == ([], 1)

    rating = StoredEvent("r-1", "alice", "172", "rating", 4.5, 1_700_000_000.123, 1.0)
    store.insert([rating])
    # received_at is not part of the payload, so a retry later is still a duplicate.
    retry = store.insert(
        [StoredEvent("r-1", "alice", "172", "rating", 4.5, 1_700_000_000.123, 9.0)]
    )
    assert retry.duplicates == 1
    with pytest.raises(EventIdConflict, match="'r-1'"):
        store.insert([StoredEvent("r-1", "alice", "172", "rating", 4.0, 1_700_000_000.123, 9.0)])
    with pytest.raises(EventIdConflict, match="'r-1'"):
        store.insert([StoredEvent("r-1", "alice", "172", "rating", 4.5, 1_700_000_001.0, 9.0)])


def test_store_read_only_reads(store: EventStore) -> None:
    store.insert([stored("ro-1", "reader", "50", "click")])
    reader = EventStore(store.url, read_only=True, option="--events")
    assert [event.event_id for event in reader.user_events("reader")] == ["ro-1"]
    reader.close()


def test_store_keeps_commit_order(store: EventStore) -> None:
    for number in range(5):
        store.insert([stored(f"e{number}", "u", str(10 - number), "impression")])
    history = store.user_events("u")
    assert [e.item_id for e in history] == ["10", "9", "8", "7", "6"]
    sequence = [e.seq for e in history]
    assert sequence == sorted(sequence)


def test_store_iterates_all_events_in_batches(store: EventStore) -> None:
    batch = [stored(f"e{n}", f"user{n % 3}", str(n), "click") for n in range(25)]
    store.insert(batch)
    seen = list(store.iter_events(batch_size=7))
    assert [e.event_id for e in seen] == [e.event_id for e in batch]


def test_store_unicode_ids_round_trip(store: EventStore) -> None:
    user = "\u7528\u6237-\U0001f600"
    store.insert([stored("\u00e9v\u00e9nement-1", user, "\u00f8l", "rating", 4.5)])
    (event,) = store.user_events(user)
    assert event.event_id == "\u00e9v\u00e9nement-1"
    assert event.item_id == "\u00f8l"
    assert event.value == 4.5


def test_store_delete_user_only_theirs(store: EventStore) -> None:
    store.insert([stored("a", "u1", "1", "click"), stored("b", "u2", "1", "click")])
    assert store.delete_user("u1") == 1
    assert store.user_events("u1") == []
    assert [e.event_id for e in store.user_events("u2")] == ["b"]
    assert store.delete_user("u1") == 0
    assert store.insert([stored("a", "u1", "1", "click")]).duplicates == 0


def test_store_ping(store: EventStore) -> None:
    assert store.ping()


def test_sqlite_store_uses_wal(tmp_path: Path) -> None:
    opened = EventStore(f"sqlite:///{tmp_path / 'wal.db'}")
    with opened.engine.connect() as connection:
        mode = connection.execute(text("PRAGMA journal_mode")).scalar()
        synchronous = connection.execute(text("PRAGMA synchronous")).scalar()
    opened.close()
    assert mode == "wal"
    assert synchronous == 2  # FULL


def test_store_rejects_bad_url() -> None:
    with pytest.raises(ConfigError, match="invalid --db-url"):
        EventStore("not a url")
    with pytest.raises(ConfigError, match="postgresql"):
        EventStore("nosuchdb://host/db")


def test_store_unreachable_postgres_names_url() -> None:
    port = 1  # nothing listens on port 1 of the loopback address
    url = f"postgresql+psycopg://user:secret@127.0.0.1:{port}/db-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ConfigError, match="cannot open the event store") as raised:
        EventStore(url)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("kind", "value", "token"),
    [
        ("click", None, CLICK),
        ("purchase", None, CLICK),
        ("skip", None, SKIP),
        ("impression", None, SKIP),
        ("rating", 3.0, HISTORY),
        ("rating", 5.0, HISTORY),
        ("rating", 2.5, SKIP),
    ],
)
def test_event_token_mapping(kind: str, value: float | None, token: int) -> None:
    assert event_token(kind, value, rating_threshold=3.0) == token


def test_event_token_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="numeric value"):
        event_token("rating", None, 3.0)
    with pytest.raises(ValueError, match="unknown event type 'view'"):
        event_token("view", None, 3.0)


def test_impression_becomes_click_later() -> None:
    tokens = UserTokens()
    for item_id, token in [("a", SKIP), ("b", SKIP), ("b", CLICK), ("c", HISTORY), ("c", SKIP)]:
        tokens.add(item_id, token)
    assert tokens.item_ids == ["a", "b", "c"]
    assert tokens.feedback == [SKIP, CLICK, HISTORY]


def test_sessions_drop_unknown_items() -> None:
    sessions = UserSessions(rating_threshold=4.0)
    sessions.apply(
        [
            stored("1", "u", "x", "rating", 5.0),
            stored("2", "u", "gone", "click"),
            stored("3", "u", "y", "rating", 1.0),
        ]
    )
    session = sessions.session("u", {"x": 0, "y": 1})
    assert session.items.tolist() == [0, 1]
    assert session.feedback.tolist() == [HISTORY, SKIP]
    empty = sessions.session("nobody", {"x": 0})
    assert len(empty) == 0
    assert empty.items.dtype == np.int64
