"""Regularisation: does the agent overfit its training users, and what does regularisation buy?

Three agents are trained on the same tasks. ``unregularised`` turns dropout,
weight decay and early stopping off and keeps its last weights.
``early stopping`` is the experiment's config as given (the adaptation
agent by default), which keeps its best validation epoch and iteration.
``regularised`` adds the dropout and weight decay of
``config.regularisation`` to early stopping. Every validation record also
scores as many training users' tasks as there are validation tasks, so the
curves show the gap between seen and unseen users.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from metarec.experiments.common import (
    Timer,
    fidelity_lines,
    held_out_tasks,
    play_policies,
    score_policies,
    score_record,
    score_table,
    write_experiment,
)
from metarec.experiments.plots import plot_scores, plot_training_curves
from metarec.progress import Reporter
from metarec.simulation.agent import SimulationTraining, train_simulation_agent
from metarec.simulation.config import SimulationConfig
from metarec.simulation.policies import RecommenderPolicy, SimulationPolicy
from metarec.simulation.world import build_world

logger = logging.getLogger(__name__)

REGULARISED = "regularised"
EARLY_STOPPING = "early stopping"
UNREGULARISED = "unregularised"


def unregularised(config: SimulationConfig) -> SimulationConfig:
    """Return a copy of ``config`` with dropout, weight decay and early stopping turned off."""
    plain = config.model_copy(deep=True)
    plain.model.dropout = 0.0
    plain.pretrain.weight_decay = 0.0
    plain.pretrain.keep_best = False
    plain.pretrain.patience = max(plain.pretrain.epochs, 1)
    plain.rl.weight_decay = 0.0
    plain.rl.keep_best = False
    return plain


def regularised(config: SimulationConfig) -> SimulationConfig:
    """Return a copy of ``config`` with ``config.regularisation`` and early stopping on."""
    setting = config.model_copy(deep=True)
    setting.model.dropout = config.regularisation.dropout
    setting.rl.weight_decay = config.regularisation.weight_decay
    setting.pretrain.keep_best = True
    setting.rl.keep_best = True
    return setting


def run_regularisation(
    config: SimulationConfig, out_dir: Path, reporter: Reporter
) -> dict[str, Any]:
    """Train both agents, record their curves, and score both on test users."""
    timer = Timer()
    world = timer.measure("world_s", lambda: build_world(config))
    tracked = len(world.tasks["valid"])
    settings = {
        UNREGULARISED: unregularised(config),
        EARLY_STOPPING: config,
        REGULARISED: regularised(config),
    }
    trainings: dict[str, SimulationTraining] = {}
    for name, setting in settings.items():
        started = time.perf_counter()
        trainings[name] = train_simulation_agent(
            world, setting, track_train_tasks=tracked, reporter=reporter
        )
        timer.seconds[f"agent_{name}_s"] = round(time.perf_counter() - started, 3)
    policies: dict[str, SimulationPolicy] = {
        name: RecommenderPolicy(training.agent, name) for name, training in trainings.items()
    }
    envs = world.envs(held_out_tasks(world, config), config.episode, config.model.max_tokens)
    results = timer.measure("evaluation_s", lambda: play_policies(policies, envs, config.seed))
    scores = score_policies(results, config.seed)
    gaps = {
        name: _final_gap(training, settings[name].rl.keep_best)
        for name, training in trainings.items()
    }
    record: dict[str, Any] = {
        "experiment": "regularisation",
        "world": world.name,
        "settings": {
            name: {
                "dropout": setting.model.dropout,
                "weight_decay": setting.rl.weight_decay,
                "early_stopping": setting.pretrain.keep_best and setting.rl.keep_best,
            }
            for name, setting in settings.items()
        },
        "fidelity": world.fidelity,
        "scores": {name: score_record(score) for name, score in scores.items()},
        "train_minus_validation": gaps,
        "training": {name: training.history for name, training in trainings.items()},
        "timings": timer.seconds,
    }
    lines = [
        f"# Regularisation on {world.name} simulated users",
        "",
        *fidelity_lines(world),
        "",
        "| agent | dropout | weight decay | early stopping | train - validation return |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for name, setting in record["settings"].items():
        lines.append(
            f"| {name} | {setting['dropout']:g} | {setting['weight_decay']:g} "
            f"| {'yes' if setting['early_stopping'] else 'no'} | {gaps[name]:.3f} |"
        )
    lines += [
        "",
        "The gap is measured at the kept weights on as many training users as there are "
        f"validation users ({tracked}). Test users:",
        "",
        score_table(scores),
        "",
        f"Time: {', '.join(f'{k[:-2]} {v:.1f}s' for k, v in timer.seconds.items())}.",
        "",
        "![training](training.png)",
        "![scores](scores.png)",
        "",
    ]
    plots = {
        "training.png": lambda path: plot_training_curves(
            {name: training.history for name, training in trainings.items()}, path
        ),
        "scores.png": lambda path: plot_scores(scores, path, f"{world.name}: regularisation"),
    }
    write_experiment(out_dir, config, record, "\n".join(lines), plots)
    return record


def _final_gap(training: SimulationTraining, keep_best: bool) -> float:
    """Return training-task minus validation return at the weights the agent kept."""
    records = training.history["meta_rl"]
    if not records or "train_return" not in records[0]:
        return float("nan")
    kept = max(records, key=lambda record: record["score"]) if keep_best else records[-1]
    return kept["train_return"] - kept["score"]
