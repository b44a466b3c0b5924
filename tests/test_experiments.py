"""Simulation experiments end to end on a tiny synthetic world, and their statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from metarec.cli import app
from metarec.experiments.virtual import _gap_closed
from metarec.simulation.config import load_simulation_config
from metarec.simulation.runner import EpisodeResults

TINY = Path(__file__).parent / "configs" / "tiny_simulation.yaml"

pytestmark = pytest.mark.slow


def _results(name: str, returns: np.ndarray) -> EpisodeResults:
    rewards = np.stack([returns, np.zeros_like(returns)], axis=1)
    users = returns.shape[0]
    return EpisodeResults(
        name,
        np.arange(users),
        0,
        rewards,
        rewards,
        rewards.astype(np.int64),
        np.ones_like(rewards, dtype=bool),
        np.zeros(users, dtype=bool),
    )


def test_gap_closed_halfway() -> None:
    rng = np.random.default_rng(0)
    few = rng.uniform(0, 1, 200)
    results = {
        "all real": _results("all real", few + 2.0),
        "few real": _results("few real", few),
        "few real + GAN": _results("few real + GAN", few + 1.0),
    }
    gap = _gap_closed(results, "few real + GAN", seed=0)
    assert gap["gap_closed"] == pytest.approx(0.5)
    assert gap["low"] == pytest.approx(0.5)
    assert gap["high"] == pytest.approx(0.5)


@pytest.mark.parametrize("experiment", ["adaptation", "shift", "virtual", "regularisation"])
def test_experiment_writes_report(experiment: str, tmp_path: Path) -> None:
    out = tmp_path / experiment
    result = CliRunner().invoke(
        app,
        ["simulate", experiment, "--config", str(TINY), "--out", str(out), "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for name in ("config.yaml", "results.json", "report.md"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.png")), "no plot written"
    record = json.loads((out / "results.json").read_text())
    for name, score in record["scores"].items():
        assert score["low"] <= score["score"] <= score["high"], name
        assert score["oracle_return"] > score["random_return"], name
    saved = load_simulation_config(out / "config.yaml")
    assert saved.world.source == "synthetic"


def test_shift_rejects_switch_outside_episode(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("simulate", "shift", "--config", str(TINY), "--out", str(tmp_path / "s"), "-q"),
            *("--set", "shift.step=40"),
        ],
    )
    assert result.exit_code == 2
    assert "shift.step=40" in result.output
    assert "between 3 and 6" in result.output


def test_shift_rejects_span_past_episode_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("simulate", "shift", "--config", str(TINY), "--out", str(tmp_path / "s"), "-q"),
            *("--set", "shift.span=9"),
        ],
    )
    assert result.exit_code == 2
    assert "shift.span=9" in result.output
    assert "at most 4" in result.output


def test_shift_control_matches_switched_episodes_before_switch(tmp_path: Path) -> None:
    out = tmp_path / "shift"
    result = CliRunner().invoke(
        app,
        ["simulate", "shift", "--config", str(TINY), "--out", str(out), "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text())
    switch = record["switch_step"]
    for field in ("reward_per_step", "expected_reward_per_step"):
        switched, control = record[field], record[f"control_{field}"]
        assert set(switched) == set(control)
        for name in switched:
            # Same users, same draws, same preference until the switch: identical rewards.
            assert switched[name][:switch] == pytest.approx(control[name][:switch]), name
    assert set(record["agent_minus_baseline_shares"]) == set(record["agent_minus_baseline"])
    for name, row in record["recovery"].items():
        assert row["kept_low"] <= row["kept"] <= row["kept_high"], name
        assert row["first_low"] <= row["first"] <= row["first_high"], name
        steps = [value for value in record["user_recovery_steps"][name] if value is not None]
        assert row["user_steps"] == pytest.approx(sum(steps) / len(steps)), name
    for name, row in record["agent_minus_baseline_shares"].items():
        assert row["steps_low"] <= row["steps"] <= row["steps_high"], name
    assert record["trials"] == 2
    assert "plays 2 episodes each way" in (out / "report.md").read_text()
    assert "no-switch reference" in (out / "report.md").read_text()
    assert "recovery steps per user" in (out / "report.md").read_text()
