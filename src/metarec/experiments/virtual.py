"""Virtual tasks: can users sampled from a generative model stand in for missing real users?

Four agents are meta-trained and scored on the same held-out test users.
Agent (a) trains on all real training users and (b) on a fraction of them.
Each agent (c) trains on that fraction plus virtual users from one
generator, which is fit on the fraction's preference vectors only. Agent
(b) and every (c) share one pre-trained network, so they differ only in the
tasks of meta-RL. The gap closed by a generator is ``(c - b) / (a - b)`` of
the normalised score.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from metarec.errors import ConfigError
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
from metarec.simulation.runner import EpisodeResults
from metarec.simulation.world import SimulationWorld, build_world
from metarec.tasks.density import GaussianMixtureGenerator
from metarec.tasks.fidelity import fidelity_table, format_fidelity_table
from metarec.tasks.gan import PreferenceGAN
from metarec.tasks.generative import PreferenceGenerator
from metarec.tasks.generator import virtual_tasks

logger = logging.getLogger(__name__)

ALL_REAL = "all real"
FEW_REAL = "few real"
BOOTSTRAP_RESAMPLES = 1000
MIN_REAL_USERS = 10


def run_virtual(config: SimulationConfig, out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Meta-train the four agents and compare them on test users."""
    timer = Timer()
    world = timer.measure("world_s", lambda: build_world(config))
    keep = _kept_users(world, config)
    few_users = world.split.train[keep]
    few_tasks = [world.tasks["train"][index] for index in keep]
    trainings: dict[str, SimulationTraining] = {}
    trainings[ALL_REAL] = timer.measure(
        "agent_all_s", lambda: train_simulation_agent(world, config, reporter=reporter)
    )
    trainings[FEW_REAL] = timer.measure(
        "agent_few_s",
        lambda: train_simulation_agent(
            world, config, train_users=few_users, train_tasks=few_tasks, reporter=reporter
        ),
    )
    generators: dict[str, PreferenceGenerator] = {
        "GAN": PreferenceGAN(steps=config.virtual.gan_steps, seed=config.seed),
        "GMM": GaussianMixtureGenerator(seed=config.seed),
    }
    held_out = np.concatenate([world.split.valid, world.split.test])
    fidelity = timer.measure(
        "generators_s",
        lambda: fidelity_table(
            generators,
            world.response.user_factors[few_users],
            world.response.user_factors[held_out],
            seed=config.seed,
        ),
    )
    rng = np.random.default_rng(config.seed + 3)
    shots = (config.episode.min_shots, config.episode.max_shots)
    for name, generator in generators.items():
        virtual = virtual_tasks(generator, world.response, config.virtual.virtual_users, shots, rng)
        started = time.perf_counter()
        trainings[f"few real + {name}"] = train_simulation_agent(
            world,
            config,
            train_users=few_users,
            train_tasks=few_tasks + virtual,
            pretrained=trainings[FEW_REAL].pretrained,
            reporter=reporter,
        )
        timer.seconds[f"agent_{name.lower()}_s"] = round(time.perf_counter() - started, 3)
    policies: dict[str, SimulationPolicy] = {
        name: RecommenderPolicy(training.agent, name) for name, training in trainings.items()
    }
    envs = world.envs(held_out_tasks(world, config), config.episode, config.model.max_tokens)
    results = timer.measure("evaluation_s", lambda: play_policies(policies, envs, config.seed))
    scores = score_policies(results, config.seed)
    gaps = {
        name: _gap_closed(results, name, config.seed)
        for name in trainings
        if name not in (ALL_REAL, FEW_REAL)
    }
    record: dict[str, Any] = {
        "experiment": "virtual",
        "world": world.name,
        "real_users": {"all": int(world.split.train.size), "few": int(few_users.size)},
        "virtual_users": config.virtual.virtual_users,
        "fidelity": world.fidelity,
        "generator_fidelity": [_fidelity_record(row) for row in fidelity],
        "scores": {name: score_record(score) for name, score in scores.items()},
        "gap_closed": gaps,
        "training": {name: training.history for name, training in trainings.items()},
        "timings": timer.seconds,
    }
    report = _report(world, record, scores, format_fidelity_table(fidelity), timer)
    plots = {
        "scores.png": lambda path: plot_scores(scores, path, f"{world.name}: virtual tasks"),
        "training.png": lambda path: plot_training_curves(
            {name: training.history for name, training in trainings.items()}, path
        ),
    }
    write_experiment(out_dir, config, record, report, plots)
    return record


def _kept_users(world: SimulationWorld, config: SimulationConfig) -> np.ndarray:
    """Return the positions in ``split.train`` of the real users kept for (b) and (c)."""
    rng = np.random.default_rng(config.seed + 2)
    count = round(config.virtual.real_fraction * world.split.train.size)
    if count < MIN_REAL_USERS:
        raise ConfigError(
            f"virtual.real_fraction={config.virtual.real_fraction} keeps {count} of "
            f"{world.split.train.size} training users, but the generators need at least "
            f"{MIN_REAL_USERS}; raise virtual.real_fraction"
        )
    return np.sort(rng.choice(world.split.train.size, size=count, replace=False))


def _gap_closed(results: dict[str, EpisodeResults], name: str, seed: int) -> dict[str, float]:
    """Return ``(c - b) / (a - b)`` of mean returns with a paired bootstrap interval over users."""
    full, few, mixed = (results[key].returns for key in (ALL_REAL, FEW_REAL, name))
    users = full.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(users, np.full(users, 1.0 / users), BOOTSTRAP_RESAMPLES) / users
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = (weights @ mixed - weights @ few) / (weights @ full - weights @ few)
        point = (mixed.mean() - few.mean()) / (full.mean() - few.mean())
    finite = samples[np.isfinite(samples)]
    low, high = np.quantile(finite, [0.025, 0.975]) if finite.size else (np.nan, np.nan)
    return {"gap_closed": float(point), "low": float(low), "high": float(high)}


def _fidelity_record(row: Any) -> dict[str, Any]:
    return {
        "source": row.source,
        "n_samples": row.n_samples,
        "n_reference": row.n_reference,
        "mmd2": row.mmd.mmd2,
        "mmd_p_value": row.mmd.p_value,
        "c2st_accuracy": row.c2st.accuracy,
        "c2st_p_value": row.c2st.p_value,
    }


def _report(
    world: SimulationWorld,
    record: dict[str, Any],
    scores: dict[str, Any],
    fidelity: str,
    timer: Timer,
) -> str:
    lines = [
        f"# Virtual tasks on {world.name} simulated users",
        "",
        f"Real training users: all {record['real_users']['all']}, few "
        f"{record['real_users']['few']}; virtual users per generator: "
        f"{record['virtual_users']}.",
        "",
        *fidelity_lines(world),
        "",
        score_table(scores),
        "",
        "| generator | gap closed (c - b) / (a - b) | 95% CI |",
        "| --- | ---: | --- |",
    ]
    for name, gap in record["gap_closed"].items():
        lines.append(
            f"| {name} | {gap['gap_closed']:.3f} | [{gap['low']:.3f}, {gap['high']:.3f}] |"
        )
    lines += [
        "",
        "Generator fidelity against held-out real users' preference vectors "
        "(validation and test users; C2ST accuracy 0.5 = indistinguishable):",
        "",
        fidelity,
        "",
        f"Time: {', '.join(f'{k[:-2]} {v:.1f}s' for k, v in timer.seconds.items())}.",
        "",
        "![scores](scores.png)",
        "![training](training.png)",
        "",
    ]
    return "\n".join(lines)
