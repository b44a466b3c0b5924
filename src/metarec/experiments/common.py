"""Pieces every simulation experiment shares: baselines, evaluation, scores, outputs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metarec.agents.policy import SlatePolicy
from metarec.fileio import atomic_write_text, staged_folder
from metarec.progress import Reporter
from metarec.simulation.agent import VALIDATION_SEED, SimulationTraining, train_simulation_agent
from metarec.simulation.config import SimulationConfig
from metarec.simulation.dqn import DQNConfig
from metarec.simulation.policies import (
    OraclePolicy,
    RandomPolicy,
    RecommenderPolicy,
    SimulationPolicy,
)
from metarec.simulation.runner import EpisodeResults, average_episodes, run_episodes
from metarec.simulation.scoring import (
    NormalisedScore,
    ScoreDifference,
    normalised_score,
    score_difference,
)
from metarec.simulation.tuning import (
    BanditGrid,
    DQNTuning,
    TunedBaselines,
    as_policy,
    tune_simulation_baselines,
)
from metarec.simulation.world import EnvFactory, SimulationWorld
from metarec.tasks.task import Task

logger = logging.getLogger(__name__)

AGENT_NAME = "MetaRL"
REFERENCE_POLICIES = ("random", "oracle")
MAX_DQN_STEPS = 500
"""Cap on DQN steps per setting: a step took 0.5 to 1 s on a 2-core CPU (ML-100K network)."""


@dataclass
class Timer:
    """Wall-clock seconds per named phase of an experiment."""

    seconds: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = action()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)
        return result


def dqn_settings(config: SimulationConfig) -> tuple[DQNConfig, ...]:
    """Return the DQN baseline's candidate settings, one per learning rate.

    By default the DQN is trained on as many slates as meta-RL (iterations x
    batch x rounds), capped at ``MAX_DQN_STEPS`` steps of 16 users, so it may
    get fewer slates than meta-RL. ``baselines.dqn_steps`` sets the count. A learning
    rate below 1e-4 fine-tunes the pre-trained network gently (epsilon from
    0.1); larger ones explore more (epsilon from 0.5).
    """
    envs = 16
    budget = config.rl.iterations * config.rl.batch_size * config.episode.rounds // envs
    steps = config.baselines.dqn_steps or min(max(budget, 50), MAX_DQN_STEPS)
    return tuple(
        DQNConfig(
            steps=steps,
            envs=envs,
            lr=lr,
            epsilon_start=0.1 if lr < 1e-4 else 0.5,
            eval_every=max(steps // 6, 1),
            device=config.device,
        )
        for lr in config.baselines.dqn_lrs
    )


def tuned_baselines(
    world: SimulationWorld,
    config: SimulationConfig,
    pretrained: SlatePolicy,
    reporter: Reporter,
    *,
    train_users: np.ndarray | None = None,
    train_tasks: Sequence[Task] | None = None,
) -> TunedBaselines:
    """Fit every baseline on training users and tune it on validation episodes.

    The DQN starts from the agent's pre-trained network, so it differs from
    the agent only in how it is trained: pooled one-step transitions instead
    of episodic meta-RL.
    """
    users = world.split.train if train_users is None else train_users
    tasks = world.tasks["train"] if train_tasks is None else list(train_tasks)
    valid_envs = world.envs(world.tasks["valid"], config.episode, config.model.max_tokens)
    dqn = DQNTuning(
        train_envs=world.envs(tasks, config.episode, config.model.max_tokens),
        init=pretrained,
        configs=dqn_settings(config),
    )
    grid = config.baselines
    bandits = BanditGrid(
        dims=tuple(grid.dims),
        epsilons=tuple(grid.epsilons),
        ridges=tuple(grid.ridges),
        prior_strengths=tuple(grid.prior_strengths),
        noises=tuple(grid.noises),
        alphas=tuple(grid.alphas),
    )
    return tune_simulation_baselines(
        world.log,
        users,
        valid_envs,
        grid=bandits,
        dqn=dqn,
        seed=config.seed,
        trials=config.validation_trials,
        episode_seed=VALIDATION_SEED,
        reporter=reporter,
    )


@dataclass
class Comparison:
    """The trained agent, the tuned baselines, and every policy's test episodes and scores.

    ``policies`` contains the agent and the baselines, ready to play more episodes.
    """

    training: SimulationTraining
    tuned: TunedBaselines
    policies: dict[str, SimulationPolicy]
    results: dict[str, EpisodeResults]
    scores: dict[str, NormalisedScore]
    differences: dict[str, ScoreDifference]


def compare_with_baselines(
    world: SimulationWorld,
    config: SimulationConfig,
    reporter: Reporter,
    timer: Timer,
    trials: int = 1,
) -> Comparison:
    """Train the agent and the baselines, then play and score all of them on test users.

    Each test user plays ``trials`` episodes, and the results contain the mean per user.
    """
    training = timer.measure(
        "agent_s", lambda: train_simulation_agent(world, config, reporter=reporter)
    )
    tuned = timer.measure(
        "baselines_s", lambda: tuned_baselines(world, config, training.pretrained, reporter)
    )
    policies: dict[str, SimulationPolicy] = {AGENT_NAME: RecommenderPolicy(training.agent)}
    policies.update({name: as_policy(model) for name, model in tuned.models.items()})
    envs = world.envs(held_out_tasks(world, config), config.episode, config.model.max_tokens)
    results = timer.measure(
        "evaluation_s", lambda: play_policies(policies, envs, config.seed, trials)
    )
    scores = score_policies(results, config.seed)
    differences = agent_differences(results, config.seed)
    return Comparison(training, tuned, policies, results, scores, differences)


def agent_differences(results: dict[str, EpisodeResults], seed: int) -> dict[str, ScoreDifference]:
    """Return the agent's normalised score minus each baseline's, with paired intervals."""
    random, oracle = results["random"], results["oracle"]
    return {
        name: score_difference(results[AGENT_NAME], result, random, oracle, seed=seed)
        for name, result in results.items()
        if name not in (*REFERENCE_POLICIES, AGENT_NAME)
    }


def difference_table(differences: dict[str, ScoreDifference]) -> str:
    """Return a Markdown table of the agent's score minus each baseline's."""
    lines = [
        f"| {AGENT_NAME} minus | difference | 95% paired CI |",
        "| --- | ---: | --- |",
    ]
    for name, item in sorted(differences.items(), key=lambda pair: pair[1].difference):
        lines.append(f"| {name} | {item.difference:+.3f} | [{item.low:+.3f}, {item.high:+.3f}] |")
    return "\n".join(lines)


def agent_start_line(training: SimulationTraining) -> str:
    """Return a report line on the ridge head's starting point, or '' without a ridge head."""
    starts = training.history.get("ridge_start", [])
    if not starts:
        return ""
    best = max(starts, key=lambda record: record["score"])
    return (
        f"- {AGENT_NAME}: ridge head started from dim={best['ridge_dim']:g} "
        f"penalty={best['penalty']:g} (validation return {best['score']:.3f}), "
        "chosen from baselines.dims x baselines.ridges"
    )


def difference_record(item: ScoreDifference) -> dict[str, float]:
    """Return a JSON-ready dict of a score difference."""
    return {"difference": item.difference, "low": item.low, "high": item.high}


def held_out_tasks(world: SimulationWorld, config: SimulationConfig) -> list[Task]:
    """Return the held-out test tasks, capped at ``config.eval_users``."""
    tasks = world.tasks["test"]
    return tasks if config.eval_users is None else tasks[: config.eval_users]


def play_policies(
    policies: dict[str, SimulationPolicy], envs: EnvFactory, seed: int, trials: int = 1
) -> dict[str, EpisodeResults]:
    """Play every policy plus random and oracle on the same tasks and seeds.

    With ``trials`` > 1 each task plays that many episodes, with seeds
    ``seed``, ``seed + 1``, ..., and each policy's results contain the mean per
    task (:func:`~metarec.simulation.runner.average_episodes`).
    """
    runs: dict[str, list[EpisodeResults]] = {}
    for trial_seed in range(seed, seed + trials):
        everyone: dict[str, SimulationPolicy] = {
            "random": RandomPolicy(trial_seed),
            "oracle": OraclePolicy(),
            **policies,
        }
        for name, policy in everyone.items():
            runs.setdefault(name, []).append(run_episodes(policy, envs, seed=trial_seed))
    return {name: average_episodes(played) for name, played in runs.items()}


def score_policies(results: dict[str, EpisodeResults], seed: int) -> dict[str, NormalisedScore]:
    """Return the normalised score of every policy that is not a reference."""
    random, oracle = results["random"], results["oracle"]
    return {
        name: normalised_score(result, random, oracle, seed=seed)
        for name, result in results.items()
        if name not in REFERENCE_POLICIES
    }


def score_record(score: NormalisedScore) -> dict[str, Any]:
    """Return a JSON-ready dict of a normalised score."""
    return {
        "score": score.score,
        "low": score.low,
        "high": score.high,
        "mean_return": score.mean_return,
        "random_return": score.random_return,
        "oracle_return": score.oracle_return,
        "users": score.users,
        "confidence": score.confidence,
        "per_step": _finite_list(score.per_step),
        "per_step_low": _finite_list(score.per_step_low),
        "per_step_high": _finite_list(score.per_step_high),
    }


def _finite_list(values: np.ndarray) -> list[float | None]:
    return [float(value) if np.isfinite(value) else None for value in values]


def score_table(scores: dict[str, NormalisedScore]) -> str:
    """Return a Markdown table of normalised scores, best first."""
    lines = [
        "| policy | normalised score | 95% CI | mean return |",
        "| --- | ---: | --- | ---: |",
    ]
    for name, score in sorted(scores.items(), key=lambda pair: -pair[1].score):
        lines.append(
            f"| {name} | {score.score:.3f} | [{score.low:.3f}, {score.high:.3f}] "
            f"| {score.mean_return:.3f} |"
        )
    return "\n".join(lines)


def fidelity_lines(world: SimulationWorld) -> list[str]:
    """Return report lines on how far the simulator can be trusted."""
    if world.fidelity is None:
        return [
            "The world is synthetic: the response model is the ground truth by construction.",
        ]
    figures = world.fidelity
    return [
        "Response model on held-out interactions of validation users (last 20% hidden): "
        f"AUC {figures['model_auc']:.4f} (popularity {figures['popularity_auc']:.4f}), "
        f"log-loss {figures['model_log_loss']:.5f} "
        f"(popularity {figures['popularity_log_loss']:.5f}).",
    ]


def write_experiment(
    out_dir: Path,
    config: SimulationConfig,
    results: dict[str, Any],
    report: str,
    plots: dict[str, Callable[[Path], None]],
) -> None:
    """Write config, results, report and plots into ``out_dir`` atomically."""
    with staged_folder(out_dir) as staging:
        atomic_write_text(staging / "config.yaml", config.to_yaml())
        atomic_write_text(
            staging / "results.json", json.dumps(_json_safe(results), indent=2, allow_nan=False)
        )
        atomic_write_text(staging / "report.md", report)
        for name, draw in plots.items():
            draw(staging / name)
    logger.info("wrote %s", out_dir)


def _json_safe(value: Any) -> Any:
    """Return ``value`` with NaN and infinite floats as None, so the file is valid JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value
