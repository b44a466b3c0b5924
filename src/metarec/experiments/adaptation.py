"""Adaptation: normalised score on held-out users, the agent against every baseline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

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
from metarec.experiments.plots import plot_per_step, plot_scores, plot_training_curves
from metarec.progress import Reporter
from metarec.simulation.config import SimulationConfig
from metarec.simulation.tuning import chosen_values
from metarec.simulation.world import build_world

logger = logging.getLogger(__name__)


def run_adaptation(config: SimulationConfig, out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Train the agent and the baselines, then score all of them on test users' episodes."""
    timer = Timer()
    world = timer.measure("world_s", lambda: build_world(config))
    comparison = compare_with_baselines(world, config, reporter, timer)
    training, tuned, results, scores = (
        comparison.training,
        comparison.tuned,
        comparison.results,
        comparison.scores,
    )
    rl_steps = config.rl.iterations * config.rl.batch_size * config.episode.rounds
    gaps = results["oracle"].rewards.mean(axis=0) - results["random"].rewards.mean(axis=0)
    test_users = results["oracle"].tasks.shape[0]

    record: dict[str, Any] = {
        "experiment": "adaptation",
        "world": world.name,
        "users": {part: len(tasks) for part, tasks in world.tasks.items()},
        "fidelity": world.fidelity,
        "scores": {name: score_record(score) for name, score in scores.items()},
        "agent_minus_baseline": {
            name: difference_record(item) for name, item in comparison.differences.items()
        },
        "baseline_params": tuned.params,
        "baseline_validation_return": tuned.validation_return,
        "training": training.history,
        "timings": timer.seconds,
        "meta_rl_env_steps": rl_steps,
    }
    report = "\n".join(
        [
            f"# Adaptation on {world.name} simulated users",
            "",
            f"Test users: {test_users}, {config.episode.rounds} slates of "
            f"{config.episode.slate_size}, reward {config.episode.reward}, users quit after "
            f"{config.episode.patience} slates without a click.",
            "",
            *fidelity_lines(world),
            "",
            score_table(scores),
            "",
            "The agent's score minus each baseline's, resampling the same test users:",
            "",
            difference_table(comparison.differences),
            "",
            "Baselines chosen on validation users:",
            "",
            *[f"- {line}" for line in chosen_values(tuned)],
            agent_start_line(training),
            "",
            f"Time: {', '.join(f'{k[:-2]} {v:.1f}s' for k, v in timer.seconds.items())}.",
            "",
            "![scores](scores.png)",
            "![per step](per_step.png)",
            "![training](training.png)",
            "",
        ]
    )
    plots = {
        "scores.png": lambda path: plot_scores(scores, path, f"{world.name}: test users"),
        "per_step.png": lambda path: plot_per_step(
            scores, gaps, path, f"{world.name}: normalised reward per step"
        ),
        "training.png": lambda path: plot_training_curves({AGENT_NAME: training.history}, path),
    }
    write_experiment(out_dir, config, record, report, plots)
    return record
