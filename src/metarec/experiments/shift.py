"""Preference shift: users switch preferences mid-episode; how fast does each policy recover?

Every policy plays the test users twice with the same episode seeds: once
with the switch and once without it (the control). The two episodes are
identical up to the switch, so the difference after it is the switch's own
effect. :mod:`metarec.experiments.recovery` defines the recovery figures.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from metarec.errors import ConfigError
from metarec.experiments.common import (
    AGENT_NAME,
    Timer,
    agent_start_line,
    compare_with_baselines,
    difference_record,
    difference_table,
    fidelity_lines,
    held_out_tasks,
    play_policies,
    score_record,
    score_table,
    write_experiment,
)
from metarec.experiments.plots import plot_reward_curves, plot_training_curves
from metarec.experiments.recovery import (
    PRE_SWITCH_WINDOW,
    RECOVERY_LEVEL,
    measure_recovery,
    paired_differences,
    user_recovery_steps,
)
from metarec.progress import Reporter
from metarec.simulation.config import SimulationConfig
from metarec.simulation.runner import EpisodeResults
from metarec.simulation.scoring import ScoreDifference
from metarec.simulation.tuning import chosen_values
from metarec.simulation.world import SimulationWorld, build_world, with_shift

logger = logging.getLogger(__name__)


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
    step, span, rounds = config.shift.step, config.shift.span, config.episode.rounds
    if not PRE_SWITCH_WINDOW <= step < rounds - 1:
        raise ConfigError(
            f"shift.step={step} is invalid: rewards before and after the switch must be "
            f"seen, so set shift.step between {PRE_SWITCH_WINDOW} and {rounds - 2}, or raise "
            "episode.rounds"
        )
    if span > rounds - step:
        raise ConfigError(
            f"shift.span={span} is invalid: the preference would still be moving when the "
            f"episode ends at step {rounds}, so set shift.span to at most {rounds - step}"
        )


def run_shift(config: SimulationConfig, out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Train with shifting users, then measure reward around the switch on test users."""
    _check_switch(config)
    timer = Timer()
    steady = timer.measure("world_s", lambda: build_world(config))
    world = shifted_world(steady, config)
    trials = config.shift.trials
    comparison = compare_with_baselines(world, config, reporter, timer, trials)
    training, tuned = comparison.training, comparison.tuned
    results, scores, differences = comparison.results, comparison.scores, comparison.differences
    control_envs = steady.envs(
        held_out_tasks(steady, config), config.episode, config.model.max_tokens
    )
    control = timer.measure(
        "control_s", lambda: play_policies(comparison.policies, control_envs, config.seed, trials)
    )
    switch = config.shift.step
    recovery = measure_recovery(results, control, switch, config.seed)
    shares = paired_differences(results, control, AGENT_NAME, switch, config.seed)

    record: dict[str, Any] = {
        "experiment": "shift",
        "world": world.name,
        "switch_step": switch,
        "switch_span": config.shift.span,
        "trials": trials,
        "fidelity": world.fidelity,
        "recovery": recovery,
        "agent_minus_baseline_shares": {
            name: row for name, row in shares.items() if name not in ("random", "oracle")
        },
        "user_recovery_steps": {
            name: user_recovery_steps(result, control[name], switch).tolist()
            for name, result in results.items()
        },
        "reward_per_step": _curves(results, "rewards"),
        "control_reward_per_step": _curves(control, "rewards"),
        "expected_reward_per_step": _curves(results, "expected_rewards"),
        "control_expected_reward_per_step": _curves(control, "expected_rewards"),
        "scores": {name: score_record(score) for name, score in scores.items()},
        "agent_minus_baseline": {
            name: difference_record(item) for name, item in differences.items()
        },
        "baseline_params": tuned.params,
        "training": training.history,
        "timings": timer.seconds,
    }
    start = agent_start_line(training).removeprefix("- ")
    chosen = [*chosen_values(tuned), *([start] if start else [])]
    report = _report(
        world,
        config,
        recovery,
        record["agent_minus_baseline_shares"],
        scores,
        differences,
        chosen,
        timer,
    )
    curves = {name: np.asarray(curve) for name, curve in record["expected_reward_per_step"].items()}
    controls = {
        name: np.asarray(curve)
        for name, curve in record["control_expected_reward_per_step"].items()
    }
    plots = {
        "shift.png": lambda path: plot_reward_curves(
            curves, controls, switch, path, f"{world.name}: expected reward around the switch"
        ),
        "training.png": lambda path: plot_training_curves({AGENT_NAME: training.history}, path),
    }
    write_experiment(out_dir, config, record, report, plots)
    return record


def _curves(results: dict[str, EpisodeResults], field: str) -> dict[str, list[float]]:
    """Return each policy's mean per step of ``field`` (``rewards`` or ``expected_rewards``)."""
    return {name: getattr(result, field).mean(axis=0).tolist() for name, result in results.items()}


def _recovery_lines(recovery: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| policy | recovery steps per user | 95% interval | users back | users dropped "
        "| steps of users who dropped "
        "| recovery steps (no-switch reference) | 95% interval | first slate share "
        "| 95% interval | reward kept | 95% interval | reward per step after the switch, "
        "with / without | recovery steps (pre-switch level) | 95% interval |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | --- "
        "| ---: | ---: | --- |",
    ]
    # Fastest first; a policy with no users left at the switch (NaN steps) goes last.
    ordered = sorted(
        recovery.items(), key=lambda pair: (np.isnan(pair[1]["user_steps"]), pair[1]["user_steps"])
    )
    for name, row in ordered:
        lines.append(
            f"| {name} | {row['user_steps']:.2f} "
            f"| [{row['user_low']:.2f}, {row['user_high']:.2f}] | {row['user_back']:.0%} "
            f"| {row['user_dropped']:.0%} | {row['user_dropped_steps']:.2f} "
            f"| {row['control_recovery_steps']:g} "
            f"| [{row['control_low']:g}, {row['control_high']:g}] "
            f"| {row['first']:.3f} | [{row['first_low']:.3f}, {row['first_high']:.3f}] "
            f"| {row['kept']:.3f} | [{row['kept_low']:.3f}, {row['kept_high']:.3f}] "
            f"| {row['post_switch_reward']:.3f} / {row['control_post_switch_reward']:.3f} "
            f"| {row['recovery_steps']:g} | [{row['low']:g}, {row['high']:g}] |"
        )
    return lines


def _share_lines(shares: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        f"| {AGENT_NAME} minus | recovery steps per user | 95% paired CI | first slate share "
        "| 95% paired CI | reward kept | 95% paired CI |",
        "| --- | ---: | --- | ---: | --- | ---: | --- |",
    ]
    for name, row in sorted(shares.items(), key=lambda pair: -pair[1]["steps"]):
        lines.append(
            f"| {name} | {row['steps']:+.2f} | [{row['steps_low']:+.2f}, {row['steps_high']:+.2f}] "
            f"| {row['first']:+.3f} | [{row['first_low']:+.3f}, {row['first_high']:+.3f}] "
            f"| {row['kept']:+.3f} | [{row['kept_low']:+.3f}, {row['kept_high']:+.3f}] |"
        )
    return lines


def _report(
    world: SimulationWorld,
    config: SimulationConfig,
    recovery: dict[str, dict[str, float]],
    shares: dict[str, dict[str, float]],
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
        "Each policy also plays the same users with the same random draws and no switch. "
        f"Every user plays {config.shift.trials} episodes each way, with seeds "
        f"{config.seed} to {config.seed + config.shift.trials - 1}, and every figure below "
        "reads the user's mean over them, so it describes the user's expected episode "
        "rather than one draw of the clicks and quits. "
        "Recovery steps per user is the mean over users of the steps from the switch until "
        f"the user's expected reward first reaches {RECOVERY_LEVEL:.0%} of their own "
        "no-switch expected reward at that step. A user not back by the end counts the "
        "steps left, so it is a restricted mean, and users back gives the share that "
        "made it; users who left before the switch are left out. Users dropped is the share "
        "below the line at the switch step, next to their mean recovery steps. The other two "
        "recovery times read the mean curve over users: the steps from the switch until it "
        f"first reaches {RECOVERY_LEVEL:.0%} of a reference: the same policy's expected reward "
        f"at the same step without the switch, or its own mean over the {PRE_SWITCH_WINDOW} "
        "steps before the switch. It is 0 when the reward is already there at the switch "
        "step, and inf when it does not get there within the episode. The switch step shows "
        "the same slate with and without the switch, so on the mean curve a policy that "
        "adapts needs at least 1 step. First slate share is the expected reward of the "
        "slate after the switch step, the first one chosen with feedback under the new "
        "preference, over its no-switch value. Reward kept is the expected reward from the "
        "switch on as a share of the no-switch expected reward from there. Intervals are 95% "
        "bootstrap intervals over users.",
        "",
        *fidelity_lines(world),
        "",
        *_recovery_lines(recovery),
        "",
        "Popularity and random show the same slates whatever the user clicks, so the switch "
        "makes no belief of theirs wrong: their recovery time shows only how much the new "
        "user likes slates chosen without feedback, and says nothing about adaptation. "
        "Reward kept can exceed 1 because "
        "the new preference is another user's, whose best items have not been shown yet.",
        "",
        "The agent's shares minus each baseline's, resampling the same test users:",
        "",
        *_share_lines(shares),
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
