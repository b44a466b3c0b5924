"""`metarec serve` and `metarec train` option checks, and log lines written to a file."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import API_KEY
from typer.testing import CliRunner

from metarec.cli import _setup_logging
from metarec.cli import app as cli


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("METAREC_API_KEYS", API_KEY)
    return API_KEY


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def serve(run_dir: Path, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", str(run_dir), "--quiet", *options])
    return result.exit_code, result.output


def assert_one_error_line(output: str, *parts: str) -> None:
    assert output.startswith("error: "), output
    assert output.count("\n") == 1, output
    assert "\u256d" not in output, output
    for part in parts:
        assert part in output, output


def test_serve_busy_port_fails_before_loading(api_key: str, busy_port: int, tmp_path: Path) -> None:
    # The run folder does not exist, so an error about it would mean the model was loaded first.
    code, output = serve(tmp_path / "no-run", "--port", str(busy_port))
    assert code == 2
    assert_one_error_line(output, f"port {busy_port} on 127.0.0.1 is already in use", "--port")
    assert not (tmp_path / "no-run").exists()


def test_serve_foreign_host_fails(api_key: str, tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737), never an address of this machine.
    code, output = serve(tmp_path / "no-run", "--host", "192.0.2.1", "--port", "8765")
    assert code == 2
    assert_one_error_line(output, "--host 192.0.2.1 is not an address of this machine")


def test_serve_unresolvable_host_fails(api_key: str, tmp_path: Path) -> None:
    code, output = serve(tmp_path / "no-run", "--host", "no-such-host.invalid", "--port", "8765")
    assert code == 2
    assert_one_error_line(output, "--host 'no-such-host.invalid' does not resolve")


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_serve_port_out_of_range(api_key: str, tmp_path: Path, port: str) -> None:
    code, output = serve(tmp_path / "no-run", "--port", port)
    assert code == 2
    assert_one_error_line(output, f"--port {port} is out of range", "1 to 65535")


def test_serve_threads_zero_one_line(api_key: str, tmp_path: Path) -> None:
    code, output = serve(tmp_path / "no-run", "--threads", "0")
    assert code == 2
    assert_one_error_line(output, "--threads must be at least 1; got 0")


def train(*options: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["train", *options])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--lr", "0"], "--lr must be positive; got 0.0"),
        (["--threads", "0"], "--threads must be at least 1; got 0"),
    ],
)
def test_train_bad_numbers_one_line(
    checkpoint_dir: Path, tmp_path: Path, option: list[str], message: str
) -> None:
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    code, output = train("--resume", str(checkpoint_dir), "--events", events_url, *option)
    assert code == 2
    assert_one_error_line(output, message)


def test_train_accepts_threads(checkpoint_dir: Path, tmp_path: Path) -> None:
    from metarec.serving.store import EventStore

    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    EventStore(events_url).close()
    arguments = ["--resume", str(checkpoint_dir), "--events", events_url, "--threads", "1"]
    code, output = train(*arguments, "--out", str(tmp_path / "new"), "-q")
    # The store is empty, so training stops after the checkpoint and the store were opened.
    assert code == 2
    assert_one_error_line(output, "no user with a positive event")


@pytest.fixture
def restore_metarec_logger() -> Iterator[None]:
    root = logging.getLogger("metarec")
    saved = (root.handlers[:], root.level, root.propagate)
    yield
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]


def test_log_records_one_line_each(
    capsys: pytest.CaptureFixture[str], restore_metarec_logger: None
) -> None:
    _setup_logging(quiet=False)
    long_url = "http://127.0.0.1:8000/" + "x" * 300
    logging.getLogger("metarec.serving.app").info("serving on %s (API docs at /docs)", long_url)
    logging.getLogger("metarec.serving.store").warning("event store %s unreachable", "sqlite://")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(f"INFO metarec.serving.app: serving on {long_url} (API docs at /docs)")
    assert lines[1].endswith("WARNING metarec.serving.store: event store sqlite:// unreachable")
