"""SQLite event store files: their path in a URL, read-only engines and replacement checks."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool


class StoreUnavailableError(RuntimeError):
    """The event store cannot be used safely, e.g. its SQLite file was deleted or replaced."""


def sqlite_file(parsed: URL) -> Path | None:
    """Return the database file of an SQLite URL, or None for in-memory and URI forms."""
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def read_only_engine(path: Path) -> Engine:
    """Create an engine that opens ``path`` with SQLite's ``mode=ro``, so it never writes it.

    The database file itself is never changed. SQLite may still create the ``-wal`` and
    ``-shm`` files of a WAL database when they are missing and the folder is writable.
    """
    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30.0)

    return create_engine("sqlite://", creator=connect, poolclass=NullPool)


@dataclass(frozen=True)
class FileIdentity:
    """The device and inode of the SQLite file that the store opened."""

    path: Path
    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        status = path.stat()
        return cls(path, status.st_dev, status.st_ino)

    def check(self) -> None:
        """Raise StoreUnavailableError when the file is gone or another file took its path.

        An open SQLite connection keeps writing to a deleted file, and a new one creates
        an empty file at the path, so either way acknowledged events would be lost.
        """
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            raise StoreUnavailableError(
                f"the SQLite event store {self.path} was deleted while the service ran; "
                "restart the service, and keep --db-url outside folders that "
                "`metarec run --out` replaces"
            ) from None
        if (status.st_dev, status.st_ino) != (self.device, self.inode):
            raise StoreUnavailableError(
                f"the SQLite event store {self.path} was replaced by another file while "
                "the service ran; restart the service to open the new file"
            )
