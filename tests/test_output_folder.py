"""Output folders: which earlier outputs a command may replace, and what it must keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarec.errors import ConfigError
from metarec.experiments.cli import SIMULATION_FILES, SIMULATION_MARKERS
from metarec.pipeline import check_output_folder


def test_new_folder_accepted(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "new") == (tmp_path / "new").resolve()


def test_earlier_run_replaced(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text("{}")
    assert check_output_folder(tmp_path) == tmp_path.resolve()


def test_earlier_simulation_replaced(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}")
    assert check_output_folder(tmp_path, SIMULATION_MARKERS) == tmp_path.resolve()


def test_simulation_with_plots_replaced(tmp_path: Path) -> None:
    for name in ("results.json", "report.md", "config.yaml", "scores.png"):
        (tmp_path / name).write_text("x")
    target = check_output_folder(tmp_path, SIMULATION_MARKERS, SIMULATION_FILES)
    assert target == tmp_path.resolve()


@pytest.mark.parametrize("extra", ["notes.txt", "sub"])
def test_simulation_keeps_foreign_files(tmp_path: Path, extra: str) -> None:
    (tmp_path / "results.json").write_text("{}")
    if extra == "sub":
        (tmp_path / extra).mkdir()
        (tmp_path / extra / "data.csv").write_text("keep")
    else:
        (tmp_path / extra).write_text("keep")
    with pytest.raises(ConfigError, match=f"contains {extra}, which this command did not write"):
        check_output_folder(tmp_path, SIMULATION_MARKERS, SIMULATION_FILES)
    assert (tmp_path / "results.json").exists()


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
