"""A real server process killed mid-stream keeps every acknowledged event and rebuilds state."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from metarec.checkpoint import load_checkpoint
from metarec.serving.sessions import UserSessions
from metarec.serving.store import EventStore

pytestmark = pytest.mark.slow

API_KEY = "restart-test-key"
USER = "restart-\u00fc"
BATCH = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(run_dir: Path, db_url: str, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start ``metarec serve`` on a free port and yield its URL once /readyz returns 200."""
    port = free_port()
    command = [sys.executable, "-m", "metarec.cli", "serve", str(run_dir), "--port", str(port)]
    command += ["--db-url", db_url, "--threads", "1"]
    env = {**os.environ, "METAREC_API_KEYS": API_KEY}
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"server not ready after 60 s: {log.read_text()[-2000:]}")


def stream_events(
    url: str, items: list[str], acknowledged: list[str], stop: threading.Event
) -> None:
    """Post batches of events until the server stops responding, and record acknowledged ids."""
    with httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=10) as client:
        for start in range(0, len(items), BATCH):
            if stop.is_set():
                return
            batch = [
                {
                    "event_id": f"ev-{start + offset}",
                    "user_id": USER,
                    "item_id": item,
                    "type": "click" if (start + offset) % 7 == 0 else "impression",
                }
                for offset, item in enumerate(items[start : start + BATCH])
            ]
            try:
                response = client.post("/v1/events", json={"events": batch})
            except httpx.TransportError:
                return
            if response.status_code != 200:
                return
            assert response.json()["accepted"] == len(batch)
            acknowledged.extend(event["event_id"] for event in batch)


def test_sigkill_mid_stream_loses_no_ack(checkpoint_dir: Path, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'events.db'}"
    log = tmp_path / "server.log"
    checkpoint = load_checkpoint(checkpoint_dir)
    items = list(checkpoint.item_ids[:1000])
    acknowledged: list[str] = []
    stop = threading.Event()

    with server(checkpoint_dir, db_url, log) as (url, process):
        poster = threading.Thread(target=stream_events, args=(url, items, acknowledged, stop))
        poster.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 10 * BATCH and poster.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        stop.set()
        poster.join(timeout=20)
    assert len(acknowledged) >= 10 * BATCH, log.read_text()[-2000:]
    assert len(acknowledged) < len(items), "the stream ended before the kill"

    with server(checkpoint_dir, db_url, log) as (url, _):
        history = httpx.get(f"{url}/v1/users/{USER}/history", timeout=10).json()["events"]
        served = httpx.post(
            f"{url}/v1/recommendations", json={"user_id": USER, "k": 50}, timeout=10
        ).json()["items"]

    stored_ids = [event["event_id"] for event in history]
    assert len(stored_ids) == len(set(stored_ids))
    assert set(acknowledged) <= set(stored_ids)
    assert stored_ids[: len(acknowledged)] == acknowledged

    # The restarted server ranks from the session rebuilt out of the store.
    sessions = UserSessions(rating_threshold=3.0)
    store = EventStore(db_url)
    sessions.apply(store.iter_events())
    store.close()
    session = sessions.session(USER, checkpoint.item_index)
    assert len(session) == len(stored_ids)
    expected = checkpoint.agent.recommend([session], 50)[0]
    served_ids = [item["item_id"] for item in served]
    assert served_ids == [checkpoint.item_ids[i] for i in expected]
    assert not set(served_ids) & {event["item_id"] for event in history}
    assert np.isin(session.feedback, [1, 2]).all()
