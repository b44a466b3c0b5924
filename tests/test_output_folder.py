"""Output folders: which earlier outputs a command may replace, and what it must keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarec.errors import ConfigError
from metarec.experiments.cli import SIMULATION_MARKERS
from metarec.pipeline import check_output_folder


def test_new_folder_accepted(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "new") == (tmp_path / "new").resolve()


def test_earlier_run_replaced(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text("{}")
    assert check_output_folder(tmp_path) == tmp_path.resolve()


def test_earlier_simulation_replaced(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}")
    assert check_output_folder(tmp_path, SIMULATION_MARKERS) == tmp_path.resolve()


def test_simulation_rejects_training_run(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"no earlier output of this command \(none of"):
        check_output_folder(tmp_path, SIMULATION_MARKERS)


def test_run_rejects_simulation(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"model\.json, metrics\.json"):
        check_output_folder(tmp_path)


@pytest.mark.parametrize("store", ["events.db", "events.db-wal"])
def test_event_store_never_replaced(tmp_path: Path, store: str) -> None:
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / store).write_bytes(b"")
    with pytest.raises(ConfigError, match=f"event store {store}"):
        check_output_folder(tmp_path)
    with pytest.raises(ConfigError, match="event store"):
        check_output_folder(tmp_path, SIMULATION_MARKERS)
