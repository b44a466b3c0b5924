"""Preference shift: users switch preferences mid-episode; how fast does each policy recover?

Recovery time is the number of steps from the switch until the mean reward
per user is back at ``RECOVERY_LEVEL`` of its mean over the
``PRE_SWITCH_WINDOW`` steps before the switch. It is 0 when the reward never
drops below that level, and infinite when it never returns within the episode.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from metarec.experiments.common import (
    AGENT_NAME,
    Timer,
    agent_start_line,
    compare_with_baselines,
    difference_record,
    difference_table,
    fidelity_lines,
    score_record,
    score_table,
    write_experiment,
)
from metarec.experiments.plots import plot_reward_curves, plot_training_curves
from metarec.progress import Reporter
from metarec.simulation.config import SimulationConfig
from metarec.simulation.runner import EpisodeResults
from metarec.simulation.scoring import ScoreDifference
from metarec.simulation.tuning import chosen_values
from metarec.simulation.world import SimulationWorld, build_world, with_shift

logger = logging.getLogger(__name__)

RECOVERY_LEVEL = 0.9
PRE_SWITCH_WINDOW = 3
BOOTSTRAP_RESAMPLES = 1000


def recovery_time(curve: np.ndarray, switch: int) -> float:
    """Return the steps from ``switch`` until ``curve`` regains 90% of its pre-switch mean."""
    before = float(np.mean(curve[max(switch - PRE_SWITCH_WINDOW, 0) : switch]))
    if before <= 0:
        return float("nan")
    for step in range(switch, curve.shape[0]):
        if curve[step] >= RECOVERY_LEVEL * before:
            return float(step - switch)
    return float("inf")


def recovery_interval(
    rewards: np.ndarray, switch: int, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Return a bootstrap interval over users of the recovery time (``inf`` = not recovered)."""
    rng = np.random.default_rng(seed)
    users = rewards.shape[0]
    weights = rng.multinomial(users, np.full(users, 1.0 / users), BOOTSTRAP_RESAMPLES) / users
    samples = np.array([recovery_time(curve, switch) for curve in weights @ rewards])
    tail = (1.0 - confidence) / 2.0
    # inverted_cdf picks sample values, so an interval end may be inf without NaN arithmetic.
    low, high = np.quantile(samples[~np.isnan(samples)], [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)


def shifted_world(world: SimulationWorld, config: SimulationConfig) -> SimulationWorld:
    """Return the world with shifts: a share of training and validation tasks, every test task.

    New preferences are those of other users of the same split, so test
    users never take on a training user's preference.
    """
    rng = np.random.default_rng(config.seed + 1)
    tasks = {}
    for part, fraction in (
        ("train", config.shift.train_fraction),
        ("valid", config.shift.train_fraction),
        ("test", 1.0),
    ):
        targets = np.stack([task.preference for task in world.tasks[part]])
        tasks[part] = with_shift(world.tasks[part], targets, config.shift, rng, fraction)
    return dataclasses.replace(world, tasks=tasks)


def _check_switch(config: SimulationConfig) -> None:
    from metarec.errors import ConfigError

    if not PRE_SWITCH_WINDOW <= config.shift.step < config.episode.rounds - 1:
        raise ConfigError(
            f"shift.step={config.shift.step} must lie in [{PRE_SWITCH_WINDOW}, "
            f"{config.episode.rounds - 1}) so that rewards before and after it are seen"
        )


def run_shift(config: SimulationConfig, out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Train with shifting users, then measure reward around the switch on test users."""
    _check_switch(config)
    timer = Timer()
    world = shifted_world(timer.measure("world_s", lambda: build_world(config)), config)
    comparison = compare_with_baselines(world, config, reporter, timer)
    training, tuned, results, scores = (
        comparison.training,
        comparison.tuned,
        comparison.results,
        comparison.scores,
    )
    recovery = _recovery_table(results, config.shift.step, config.seed)

    record: dict[str, Any] = {
        "experiment": "shift",
        "world": world.name,
        "switch_step": config.shift.step,
        "switch_span": config.shift.span,
        "fidelity": world.fidelity,
        "recovery": recovery,
        "reward_per_step": {
            name: result.rewards.mean(axis=0).tolist() for name, result in results.items()
        },
        "scores": {name: score_record(score) for name, score in scores.items()},
        "agent_minus_baseline": {
            name: difference_record(item) for name, item in comparison.differences.items()
        },
        "baseline_params": tuned.params,
        "training": training.history,
        "timings": timer.seconds,
    }
    start = agent_start_line(training).removeprefix("- ")
    chosen = [*chosen_values(tuned), *([start] if start else [])]
    report = _report(world, config, recovery, scores, comparison.differences, chosen, timer)
    curves = {name: result.rewards.mean(axis=0) for name, result in results.items()}
    plots = {
        "shift.png": lambda path: plot_reward_curves(
            curves, config.shift.step, path, f"{world.name}: reward around the preference switch"
        ),
        "training.png": lambda path: plot_training_curves({AGENT_NAME: training.history}, path),
    }
    write_experiment(out_dir, config, record, report, plots)
    return record


def _recovery_table(
    results: dict[str, EpisodeResults], switch: int, seed: int
) -> dict[str, dict[str, float]]:
    table = {}
    for name, result in results.items():
        curve = result.rewards.mean(axis=0)
        low, high = recovery_interval(result.rewards, switch, seed)
        before = float(np.mean(curve[switch - PRE_SWITCH_WINDOW : switch]))
        steps = recovery_time(curve, switch)
        table[name] = {
            "recovery_steps": steps,
            "recovered": bool(np.isfinite(steps)),
            "dropped": bool(curve[switch] < RECOVERY_LEVEL * before),
            "low": low,
            "high": high,
            "pre_switch_reward": before,
            "post_switch_reward": float(np.mean(curve[switch:])),
        }
    return table


def _report(
    world: SimulationWorld,
    config: SimulationConfig,
    recovery: dict[str, dict[str, float]],
    scores: dict[str, Any],
    differences: dict[str, ScoreDifference],
    chosen: list[str],
    timer: Timer,
) -> str:
    lines = [
        f"# Preference shift on {world.name} simulated users",
        "",
        f"Every test user switches to another test user's preference at step "
        f"{config.shift.step + 1} of {config.episode.rounds} (span {config.shift.span}). "
        f"Recovery time: steps until the mean reward is back at "
        f"{RECOVERY_LEVEL:.0%} of its mean over the {PRE_SWITCH_WINDOW} steps before the switch "
        "(95% bootstrap interval over users; inf = not within the episode).",
        "",
        *fidelity_lines(world),
        "",
        "A policy whose reward at the switch step stays above that level did not drop, "
        "so its recovery time is 0 whether or not it adapts (a policy that ignores "
        "feedback, such as Popularity, has little to lose).",
        "",
        "| policy | dropped at switch | recovery steps | 95% interval | reward before "
        "| reward after |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for name, row in sorted(recovery.items(), key=lambda pair: pair[1]["recovery_steps"]):
        lines.append(
            f"| {name} | {'yes' if row['dropped'] else 'no'} | {row['recovery_steps']:g} "
            f"| [{row['low']:g}, {row['high']:g}] "
            f"| {row['pre_switch_reward']:.3f} | {row['post_switch_reward']:.3f} |"
        )
    lines += [
        "",
        "Normalised score over the whole episode:",
        "",
        score_table(scores),
        "",
        difference_table(differences),
        "",
        *[f"- {line}" for line in chosen],
        "",
        f"Time: {', '.join(f'{k[:-2]} {v:.1f}s' for k, v in timer.seconds.items())}.",
        "",
        "![shift](shift.png)",
        "![training](training.png)",
        "",
    ]
    return "\n".join(lines)
