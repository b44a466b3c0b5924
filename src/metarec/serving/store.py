"""The event store: users' feedback events in SQLite (WAL) or PostgreSQL via SQLAlchemy 2."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from metarec.errors import ConfigError
from metarec.serving.sqlite_files import (
    FileIdentity,
    StoreUnavailableError,
    read_only_engine,
    sqlite_file,
)

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 256
EVENT_TYPES = ("impression", "click", "purchase", "rating", "skip")
# Ids per SELECT ... IN, below the 999 bound variables of SQLite builds before 3.32.
ID_CHUNK = 500
PAYLOAD_FIELDS = ("user_id", "item_id", "type", "value", "timestamp")

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


class EventIdConflict(ValueError):
    """An event id that is already used by an event with a different payload."""

    def __init__(self, event_id: str, position: int, in_batch: bool) -> None:
        where = "earlier in the same batch" if in_batch else "in the store"
        super().__init__(
            f"event id {event_id!r} is already used {where} by an event with a different "
            "user_id, item_id, type, value or timestamp; event ids are global across users, "
            "so give each new event a new id"
        )
        self.event_id = event_id
        self.position = position


@dataclass(frozen=True)
class InsertResult:
    """The events a batch added, in commit order, and how many were already stored."""

    inserted: list[StoredEvent]
    duplicates: int


def default_sqlite_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'events.db').resolve()}"


def create_store_engine(url: str, option: str = "--db-url", read_only: bool = False) -> Engine:
    """Create an engine for ``url``; SQLite files get WAL mode and full fsync on commit.

    With ``read_only`` an SQLite file must exist and is opened with ``mode=ro``. ``option``
    is the command-line option that error messages name.
    """
    try:
        parsed = make_url(url)
        path = sqlite_file(parsed)
        if read_only and path is not None:
            _check_readable_file(path, url, option)
            engine = read_only_engine(path)
        elif parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed, connect_args={"check_same_thread": False, "timeout": 30.0}
            )
            event.listen(engine, "connect", _configure_sqlite)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise ConfigError(
            f"invalid {option} {_redact(url)}: {error}; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    return engine


def _check_readable_file(path: Path, url: str, option: str) -> None:
    if not path.is_file():
        kind = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"{option} {_redact(url)}: the SQLite file {path} {kind}; pass the URL that "
            "`metarec serve --db-url` used, by default sqlite:///RUN_DIR/events.db"
        )


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
    """Reads and writes the ``events`` table; each write is one committed transaction.

    ``read_only`` opens an existing store for reading only: an SQLite file is opened with
    ``mode=ro`` and no table is created. ``option`` is the command-line option that
    error messages name. Every call on an SQLite file first checks that the file is still
    the one opened, and raises StoreUnavailableError when it is not.
    """

    def __init__(self, url: str, *, read_only: bool = False, option: str = "--db-url") -> None:
        self.url = url
        self.engine = create_store_engine(url, option, read_only)
        self._reachable = True
        try:
            if read_only:
                self._check_table(option)
            else:
                metadata.create_all(self.engine)
        except SQLAlchemyError as error:
            reason = str(error).splitlines()[0]
            raise ConfigError(
                f"cannot open the event store {_redact(url)} given to {option}: {reason}"
            ) from None
        path = sqlite_file(make_url(url))
        self._file = None if path is None else FileIdentity.of(path)
        logger.info("event store %s ready", _redact(url))

    def _check_table(self, option: str) -> None:
        if not inspect(self.engine).has_table(events_table.name):
            raise ConfigError(
                f"the event store {_redact(self.url)} given to {option} has no events table; "
                "pass the URL of a store that `metarec serve` wrote"
            )

    def check_file(self) -> None:
        """Raise StoreUnavailableError when the SQLite file was deleted or replaced."""
        if self._file is not None:
            self._file.check()

    @contextmanager
    def _connect(self, transaction: bool = False) -> Iterator[Connection]:
        # NOTE: the file check and the commit are not atomic. A file deleted while a
        # commit runs still loses that commit, and the next call reports it unavailable.
        self.check_file()
        opened = self.engine.begin() if transaction else self.engine.connect()
        with opened as connection:
            yield connection

    @property
    def display_url(self) -> str:
        return _redact(self.url)

    def insert(self, events: Sequence[StoredEvent]) -> InsertResult:
        """Insert events whose ``event_id`` is new and commit; return the added ones by seq.

        An id repeated inside ``events`` or already stored with the same payload (user,
        item, type, value, timestamp) is a duplicate and is skipped. A repeated id with a
        different payload raises EventIdConflict, and nothing of the batch is stored.
        """
        unique: dict[str, StoredEvent] = {}
        positions: dict[str, int] = {}
        for position, item in enumerate(events):
            first = unique.setdefault(item.event_id, item)
            positions.setdefault(item.event_id, position)
            if _payload(first) != _payload(item):
                raise EventIdConflict(item.event_id, position, in_batch=True)
        duplicates = len(events) - len(unique)
        if not unique:
            return InsertResult([], duplicates)
        rows = [_row(item) for item in unique.values()]
        statement = self._insert_ignoring_duplicates(rows)
        with self._connect(transaction=True) as connection:
            for event_id, stored in _stored_payloads(connection, list(unique)).items():
                if stored != _payload(unique[event_id]):
                    raise EventIdConflict(event_id, positions[event_id], in_batch=False)
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
        with self._connect() as connection:
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
            with self._connect() as connection:
                rows = [_event(row) for row in connection.execute(query)]
            yield from rows
            if len(rows) < batch_size:
                return
            last = rows[-1].seq

    def delete_user(self, user_id: str) -> int:
        """Delete every event of the user and commit; return how many were deleted."""
        with self._connect(transaction=True) as connection:
            result = connection.execute(
                delete(events_table).where(events_table.c.user_id == user_id)
            )
        return int(result.rowcount)

    def ping(self) -> bool:
        """Return whether ``SELECT 1`` succeeds on the database it opened."""
        try:
            with self._connect() as connection:
                connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, StoreUnavailableError) as error:
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


def _payload(item: Any) -> tuple[Any, ...]:
    return tuple(getattr(item, name) for name in PAYLOAD_FIELDS)


def _stored_payloads(connection: Connection, event_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Return the payload of each of ``event_ids`` that is already stored."""
    columns = [events_table.c.event_id, *(events_table.c[name] for name in PAYLOAD_FIELDS)]
    found: dict[str, tuple[Any, ...]] = {}
    for start in range(0, len(event_ids), ID_CHUNK):
        chunk = event_ids[start : start + ID_CHUNK]
        query = select(*columns).where(events_table.c.event_id.in_(chunk))
        for row in connection.execute(query):
            found[row.event_id] = _payload(row)
    return found


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
