"""`metarec train --resume` on logged events, and serving the new version after a reload."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from service_helpers import API_KEY, events, post_events, slate
from typer.testing import CliRunner

from metarec.checkpoint import load_checkpoint, save_derived_checkpoint
from metarec.cli import app as cli
from metarec.data.interactions import InteractionLog
from metarec.data.splits import split_users
from metarec.serving.app import create_app
from metarec.serving.models import ModelHolder, load_snapshot, weights_version
from metarec.serving.service import rank_items
from metarec.serving.settings import ServiceSettings
from metarec.serving.store import EventStore
from metarec.session import Session

KEY = {"X-API-Key": API_KEY}


def log_test_users(client: TestClient, log: InteractionLog, users: int = 60) -> None:
    """Post the first 20 interactions of real test users as ratings, with a skipped slate."""
    for user in split_users(log).test[:users]:
        user_id = f"ml-{log.user_ids[user]}"
        items = [log.item_ids[i] for i in log.user_items(int(user))[:20]]
        shown = [item for item in slate(client, user_id) if item not in items]
        batch = events(user_id, items[:10], "rating", f"{user_id}-a", value=5.0)
        batch += events(user_id, shown, "impression", f"{user_id}-s")
        batch += events(user_id, items[10:], "click", f"{user_id}-b")
        post_events(client, batch)


@pytest.fixture
def settings(make_settings: Callable[..., ServiceSettings]) -> ServiceSettings:
    return make_settings()


def test_resume_then_reload_serves_new_version(
    settings: ServiceSettings, ml100k_log: InteractionLog, tmp_path: Path
) -> None:
    new_run = tmp_path / "run.v2"
    with TestClient(create_app(settings)) as client:
        log_test_users(client, ml100k_log)
        old_version = client.get("/v1/model").json()["version"]

        arguments = ["train", "--resume", str(settings.run_dir), "--events", settings.db_url]
        arguments += ["--out", str(new_run), "--epochs", "3", "--lr", "1e-3", "--quiet"]
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 0, result.output
        assert "trained on 60 users" in result.output

        summary = json.loads((new_run / "train.json").read_text())
        assert summary["users"] == 60
        assert summary["heldout_users"] == 60
        assert summary["parent_version"] == old_version
        losses = [record["heldout_loss"] for record in summary["history"]]
        assert len(losses) == 4
        assert losses[-1] < losses[0], losses
        metadata = json.loads((new_run / "model.json").read_text())
        assert metadata["parent_version"] == old_version
        assert metadata["item_ids"] == list(load_checkpoint(settings.run_dir).item_ids)

        response = client.post("/v1/model/reload", json={"run_dir": str(new_run)}, headers=KEY)
        assert response.status_code == 200, response.text
        new_version = weights_version(new_run)
        assert response.json()["version"] == new_version
        assert new_version != old_version
        assert client.get("/v1/model").json()["checkpoint_path"] == str(new_run.resolve())

        served = client.post("/v1/recommendations", json={"user_id": "ml-fresh", "k": 10}).json()
        assert served["model_version"] == new_version
        checkpoint = load_checkpoint(new_run)
        empty = Session.from_history(np.zeros(0, dtype=np.int64))
        expected = checkpoint.agent.recommend([empty], 10)[0]
        assert [item["item_id"] for item in served["items"]] == [
            checkpoint.item_ids[i] for i in expected
        ]


def test_resume_default_out_and_errors(settings: ServiceSettings, tmp_path: Path) -> None:
    run_dir = tmp_path / "base"
    shutil.copytree(settings.run_dir, run_dir)
    db_url = f"sqlite:///{tmp_path / 'logged.db'}"
    with TestClient(create_app(ServiceSettings(run_dir, db_url, (API_KEY,)))) as client:
        post_events(client, events("one", ["50", "172", "181"], "click", "x"))
    runner = CliRunner()
    first = runner.invoke(
        cli, ["train", "--resume", str(run_dir), "--events", db_url, "--epochs", "1", "-q"]
    )
    assert first.exit_code == 0, first.output
    assert (tmp_path / "base.v2" / "model.json").is_file()
    second = runner.invoke(
        cli, ["train", "--resume", str(run_dir), "--events", db_url, "--epochs", "1", "-q"]
    )
    assert second.exit_code == 0, second.output
    assert (tmp_path / "base.v3" / "model.json").is_file()

    same = runner.invoke(
        cli, ["train", "--resume", str(run_dir), "--events", db_url, "--out", str(run_dir)]
    )
    assert same.exit_code == 2
    assert "is the run being resumed" in same.output
    missing = runner.invoke(cli, ["train", "--events", db_url])
    assert missing.exit_code == 2
    assert "--resume RUN_DIR" in missing.output
    empty_db = f"sqlite:///{tmp_path / 'empty.db'}"
    EventStore(empty_db).close()
    empty = runner.invoke(cli, ["train", "--resume", str(run_dir), "--events", empty_db])
    assert empty.exit_code == 2
    assert "no user with a positive event" in empty.output


def test_reload_keeps_old_snapshot_for_running_request(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    """A request that took the old snapshot keeps ranking with it after a reload."""
    other = tmp_path / "other"
    shutil.copytree(settings.run_dir, other)
    checkpoint = load_checkpoint(other)
    with torch.no_grad():
        for parameter in checkpoint.agent.policy.parameters():
            parameter.mul_(-1.0)
    save_derived_checkpoint(other, checkpoint.agent, checkpoint, {})
    holder = ModelHolder(load_snapshot(settings.run_dir))
    in_flight = holder.current
    empty = Session.from_history(np.zeros(0, dtype=np.int64))
    before = rank_items(in_flight, empty, 10, np.zeros(0, dtype=np.int64))

    holder.reload(other)
    assert holder.current.version == weights_version(other)
    assert in_flight.version == weights_version(settings.run_dir)
    assert rank_items(in_flight, empty, 10, np.zeros(0, dtype=np.int64)) == before
    after = rank_items(holder.current, empty, 10, np.zeros(0, dtype=np.int64))
    assert [item for item, _ in after] != [item for item, _ in before]


def test_logged_users_hold_out_last_positive(tmp_path: Path) -> None:
    from metarec.serving.retrain import logged_users, training_sample
    from metarec.serving.store import EventStore, StoredEvent

    store = EventStore(f"sqlite:///{tmp_path / 'cuts.db'}")
    rows = [
        ("a", "x", "impression"),
        ("a", "y", "click"),
        ("a", "z", "skip"),
        ("a", "w", "purchase"),
        ("a", "v", "skip"),
        ("b", "x", "click"),
        ("c", "y", "skip"),
    ]
    store.insert(
        [
            StoredEvent(f"e{n}", user, item, kind, None, None, 0.0)
            for n, (user, item, kind) in enumerate(rows)
        ]
    )
    index = {"x": 0, "y": 1, "z": 2, "w": 3, "v": 4}
    users = logged_users(store, index, rating_threshold=3.0)
    store.close()

    assert len(users) == 2  # user c has no positive event
    first, second = users
    assert first.heldout == 3
    assert first.train.items.tolist() == [0, 1, 2]
    assert first.train.feedback.tolist() == [2, 1, 2]
    assert second.heldout == -1
    assert second.train.items.tolist() == [0]
    rng = np.random.default_rng(0)
    for _ in range(10):
        sample = training_sample(first, rng)
        assert sample.session.items.tolist() == [0]
        assert sample.targets.tolist() == [1]
    cold = training_sample(second, rng)
    assert len(cold.session) == 0
    assert cold.targets.tolist() == [0]
