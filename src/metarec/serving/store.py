"""The event store: users' feedback events in SQLite (WAL) or PostgreSQL via SQLAlchemy 2."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from metarec.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 256
EVENT_TYPES = ("impression", "click", "purchase", "rating", "skip")

metadata = MetaData()
events_table = Table(
    "events",
    metadata,
    # On SQLite an INTEGER PRIMARY KEY is the rowid, which grows with every insert.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("event_id", String(MAX_ID_LENGTH), nullable=False, unique=True),
    Column("user_id", String(MAX_ID_LENGTH), nullable=False, index=True),
    Column("item_id", String(MAX_ID_LENGTH), nullable=False),
    Column("type", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("timestamp", Float, nullable=True),
    Column("received_at", Float, nullable=False),
)


@dataclass(frozen=True)
class StoredEvent:
    """One feedback event; ``timestamp`` and ``received_at`` are epoch seconds (UTC)."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    value: float | None
    timestamp: float | None
    received_at: float
    seq: int = 0


@dataclass(frozen=True)
class InsertResult:
    """The events a batch added, in commit order, and how many were already stored."""

    inserted: list[StoredEvent]
    duplicates: int


def default_sqlite_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'events.db').resolve()}"


def create_store_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite files get WAL mode and full fsync on commit."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed, connect_args={"check_same_thread": False, "timeout": 30.0}
            )
            event.listen(engine, "connect", _configure_sqlite)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise ConfigError(
            f"invalid --db-url {_redact(url)}: {error}; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    return engine


def _configure_sqlite(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets readers run while a write commits. synchronous=FULL syncs the WAL on
    # every commit, so an acknowledged event survives a power loss, not only a crash.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _redact(url: str) -> str:
    """Return the URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable URL>"


class EventStore:
    """Reads and writes the ``events`` table; each write is one committed transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        self._reachable = True
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as error:
            reason = str(error).splitlines()[0]
            raise ConfigError(f"cannot open the event store {_redact(url)}: {reason}") from None
        logger.info("event store %s ready", _redact(url))

    @property
    def display_url(self) -> str:
        return _redact(self.url)

    def insert(self, events: Sequence[StoredEvent]) -> InsertResult:
        """Insert events whose ``event_id`` is new and commit; return the added ones by seq.

        An id repeated inside ``events`` or already stored is a duplicate and is skipped.
        """
        unique: dict[str, StoredEvent] = {}
        for item in events:
            unique.setdefault(item.event_id, item)
        duplicates = len(events) - len(unique)
        if not unique:
            return InsertResult([], duplicates)
        rows = [_row(item) for item in unique.values()]
        statement = self._insert_ignoring_duplicates(rows)
        with self.engine.begin() as connection:
            returned = connection.execute(statement).all()
        seq_by_id = {row.event_id: int(row.seq) for row in returned}
        inserted = [
            _with_seq(unique[event_id], seq)
            for event_id, seq in sorted(seq_by_id.items(), key=lambda pair: pair[1])
        ]
        duplicates += len(unique) - len(inserted)
        return InsertResult(inserted, duplicates)

    def _insert_ignoring_duplicates(self, rows: list[dict[str, Any]]) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            statement: Any = sqlite.insert(events_table).values(rows)
        elif dialect == "postgresql":
            statement = postgresql.insert(events_table).values(rows)
        else:
            raise ConfigError(
                f"event store dialect {dialect!r} is not supported; use SQLite or PostgreSQL"
            )
        statement = statement.on_conflict_do_nothing(index_elements=["event_id"])
        return statement.returning(events_table.c.event_id, events_table.c.seq)

    def user_events(self, user_id: str) -> list[StoredEvent]:
        """Return the user's events in commit order."""
        query = (
            select(events_table)
            .where(events_table.c.user_id == user_id)
            .order_by(events_table.c.seq)
        )
        with self.engine.connect() as connection:
            return [_event(row) for row in connection.execute(query)]

    def iter_events(self, batch_size: int = 10_000) -> Iterator[StoredEvent]:
        """Yield every stored event in commit order, reading ``batch_size`` rows at a time."""
        last = 0
        while True:
            query = (
                select(events_table)
                .where(events_table.c.seq > last)
                .order_by(events_table.c.seq)
                .limit(batch_size)
            )
            with self.engine.connect() as connection:
                rows = [_event(row) for row in connection.execute(query)]
            yield from rows
            if len(rows) < batch_size:
                return
            last = rows[-1].seq

    def delete_user(self, user_id: str) -> int:
        """Delete every event of the user and commit; return how many were deleted."""
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(events_table).where(events_table.c.user_id == user_id)
            )
        return int(result.rowcount)

    def ping(self) -> bool:
        """Return whether ``SELECT 1`` succeeds on the database."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            # Health probes repeat every few seconds, so only the change of state is logged.
            if self._reachable:
                logger.warning("event store %s unreachable: %s", self.display_url, error)
            self._reachable = False
            return False
        if not self._reachable:
            logger.info("event store %s reachable again", self.display_url)
        self._reachable = True
        return True

    def close(self) -> None:
        self.engine.dispose()


def _row(item: StoredEvent) -> dict[str, Any]:
    return {
        "event_id": item.event_id,
        "user_id": item.user_id,
        "item_id": item.item_id,
        "type": item.type,
        "value": item.value,
        "timestamp": item.timestamp,
        "received_at": item.received_at,
    }


def _with_seq(item: StoredEvent, seq: int) -> StoredEvent:
    return StoredEvent(**{**_row(item), "seq": seq})


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        event_id=row.event_id,
        user_id=row.user_id,
        item_id=row.item_id,
        type=row.type,
        value=row.value,
        timestamp=row.timestamp,
        received_at=row.received_at,
        seq=int(row.seq),
    )
