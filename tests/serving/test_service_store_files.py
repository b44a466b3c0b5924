"""The SQLite store file: deleted or replaced under the service, read-only for training."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import API_KEY, events, post_events
from typer.testing import CliRunner

from metarec.cli import app as cli
from metarec.errors import ConfigError
from metarec.serving.app import create_app
from metarec.serving.settings import ServiceSettings
from metarec.serving.store import EventStore, StoredEvent

KEY = {"X-API-Key": API_KEY}


def stored(event_id: str, user_id: str, item_id: str, kind: str) -> StoredEvent:
    return StoredEvent(event_id, user_id, item_id, kind, None, None, 1_700_000_000.0)


def sqlite_path(settings: ServiceSettings) -> Path:
    return Path(settings.db_url.removeprefix("sqlite:///"))


def remove_store_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_deleted_store_file_not_ready(make_settings: Callable[..., ServiceSettings]) -> None:
    settings = make_settings()
    path = sqlite_path(settings)
    with TestClient(create_app(settings)) as client:
        post_events(client, events("kept", ["50"], "click", "before"))
        assert client.get("/readyz").status_code == 200
        remove_store_files(path)

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "store_unavailable"
        assert str(path) in ready.json()["error"]["message"]
        batch = {"events": events("kept", ["172"], "click", "after")}
        write = client.post("/v1/events", json=batch, headers=KEY)
        assert write.status_code == 503
        assert write.json()["error"]["code"] == "store_unavailable"
        erase = client.delete("/v1/users/kept", headers=KEY)
        assert erase.status_code == 503
        history = client.get("/v1/users/kept/history")
        assert history.status_code == 503
    assert not path.exists()


def test_replaced_store_file_not_ready(
    make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    settings = make_settings()
    path = sqlite_path(settings)
    other = EventStore(f"sqlite:///{tmp_path / 'other.db'}")
    other.close()
    with TestClient(create_app(settings)) as client:
        remove_store_files(path)
        os.replace(tmp_path / "other.db", path)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "replaced" in ready.json()["error"]["message"]
        batch = {"events": events("late", ["50"], "click", "late")}
        assert client.post("/v1/events", json=batch, headers=KEY).status_code == 503


def train_on(events_url: str, run_dir: Path, out: Path) -> tuple[int, str]:
    arguments = ["train", "--resume", str(run_dir), "--events", events_url, "--out", str(out)]
    result = CliRunner().invoke(cli, [*arguments, "--epochs", "1", "-q"])
    return result.exit_code, result.output


def test_train_missing_store_not_created(checkpoint_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    code, output = train_on(f"sqlite:///{missing}", checkpoint_dir, tmp_path / "new")
    assert code == 2
    assert output.startswith("error: --events sqlite:///")
    assert output.count("\n") == 1
    assert str(missing) in output
    assert "does not exist" in output
    assert not missing.exists()
    assert not (tmp_path / "new").exists()


def test_train_non_database_not_overwritten(checkpoint_dir: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("these are notes, not events\n" * 40)
    before = notes.read_bytes()
    code, output = train_on(f"sqlite:///{notes}", checkpoint_dir, tmp_path / "new")
    assert code == 2
    assert output.startswith("error: cannot open the event store sqlite:///")
    assert "--events" in output
    assert "not a database" in output
    assert output.count("\n") == 1
    assert notes.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_train_store_without_table(checkpoint_dir: Path, tmp_path: Path) -> None:
    import sqlite3

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    code, output = train_on(f"sqlite:///{empty}", checkpoint_dir, tmp_path / "new")
    assert code == 2
    assert "has no events table" in output
    assert empty.stat().st_size == 0


def test_train_bare_path_names_events(checkpoint_dir: Path, tmp_path: Path) -> None:
    code, output = train_on(str(tmp_path / "events.db"), checkpoint_dir, tmp_path / "new")
    assert code == 2
    assert output.startswith("error: invalid --events ")
    assert "--db-url" not in output
    assert "sqlite:///PATH" in output


def test_read_only_store_reads_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    writer = EventStore(url)
    writer.insert([stored("a", "u", "50", "click"), stored("b", "u", "172", "skip")])
    writer.close()
    reader = EventStore(url, read_only=True, option="--events")
    assert [event.event_id for event in reader.iter_events()] == ["a", "b"]
    with pytest.raises(Exception, match="readonly"):
        reader.insert([stored("c", "u", "181", "click")])
    reader.close()


def test_read_only_store_rejects_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        EventStore(f"sqlite:///{tmp_path}", read_only=True, option="--events")


def test_event_id_conflict_is_409(client: TestClient) -> None:
    post_events(client, events("alice", ["50"], "click", "shared"))
    clash = events("bob", ["50"], "click", "shared")
    response = client.post("/v1/events", json={"events": clash}, headers=KEY)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "event_id_conflict"
    assert "'shared-0'" in error["message"]
    assert error["field"] == "events.0.event_id"
    assert client.get("/v1/users/bob/history").json()["events"] == []

    changed = events("alice", ["50"], "rating", "shared", value=4.0)
    assert client.post("/v1/events", json={"events": changed}, headers=KEY).status_code == 409
    repeat = events("alice", ["50"], "click", "shared")
    assert post_events(client, repeat) == {"accepted": 0, "duplicates": 1}
