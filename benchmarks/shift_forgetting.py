"""Recovery speed against score after a preference switch, for each forgetting rate of the agent.

Usage:
    metarec simulate shift --world ml-100k --seed 0 --out runs/shift-ml-0
    python benchmarks/shift_forgetting.py runs/shift-ml-0 --plot runs/shift-ml-0/forgetting.png

The agent's ridge head discounts each token by ``exp(-decay * a - miss_decay * m)``,
where ``a`` counts the slates shown after it and ``m`` those of them that
drew no click. Meta-training learns both rates. This script retrains the
agent of a finished ``metarec simulate shift`` run from its ``config.yaml``
(same seed, so the same agent), then replays the test users with the rates
replaced by each pair of a grid. For every pair it prints the mean recovery
steps per user and the normalised score over the episode, both read the way
the shift report reads them, next to each baseline's figures from the run's
``results.json``. A pair that beats every baseline on both figures is
marked. The plot puts every pair and every baseline on score against
recovery steps.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarec.experiments.common import held_out_tasks, play_policies
from metarec.experiments.recovery import user_recovery_steps
from metarec.experiments.shift import shifted_world
from metarec.simulation.agent import train_simulation_agent
from metarec.simulation.config import SimulationConfig, load_simulation_config
from metarec.simulation.policies import RecommenderPolicy
from metarec.simulation.runner import EpisodeResults, average_episodes, run_episodes
from metarec.simulation.scoring import normalised_score
from metarec.simulation.world import build_world

AGENT = "MetaRL"
REFERENCES = ("random", "oracle")


def _rates(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers, e.g. 0,0.1,0.3"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} needs one or more rates of at least 0")
    return values


def read_run(folder: Path) -> tuple[SimulationConfig, dict[str, Any]]:
    """Return the config and results of a finished shift run, or exit with a one-line error."""
    config_path, results_path = folder / "config.yaml", folder / "results.json"
    for path in (config_path, results_path):
        if not path.is_file():
            raise SystemExit(f"error: {path} not found; pass a folder written by simulate shift")
    try:
        results = json.loads(results_path.read_text())
    except ValueError as error:
        raise SystemExit(
            f"error: {results_path} is not valid JSON ({error}); rerun metarec simulate shift into "
            "its folder"
        ) from None
    if results.get("experiment") != "shift" or "user_recovery_steps" not in results:
        raise SystemExit(
            f"error: {folder} is not a shift run with recovery steps per user; "
            "rerun metarec simulate shift into it"
        )
    return load_simulation_config(config_path), results


def _raw_rate(rate: float) -> float:
    """Return the raw parameter whose softplus is ``rate`` (a very negative one for 0)."""
    return float(np.log(np.expm1(rate))) if rate > 0 else -30.0


def sweep(
    config: SimulationConfig, decays: list[float], miss_decays: list[float]
) -> list[dict[str, Any]]:
    """Retrain the agent, then return its figures with each pair of forgetting rates."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    steady = build_world(config)
    world = shifted_world(steady, config)
    agent = train_simulation_agent(world, config).agent
    ridge = agent.policy.ridge
    if ridge is None or ridge.slate_size is None:
        raise SystemExit("error: the agent has no ridge head over slates; nothing to sweep")
    with torch.no_grad():
        learned = (float(ridge.decay), float(torch.nn.functional.softplus(ridge.raw_miss_decay)))
    tokens, trials, switch = config.model.max_tokens, config.shift.trials, config.shift.step
    shifted_envs = world.envs(held_out_tasks(world, config), config.episode, tokens)
    control_envs = steady.envs(held_out_tasks(steady, config), config.episode, tokens)
    references = play_policies({}, shifted_envs, config.seed, trials)
    policy = RecommenderPolicy(agent)

    def play(envs: Any) -> EpisodeResults:
        seeds = range(config.seed, config.seed + trials)
        return average_episodes([run_episodes(policy, envs, seed=seed) for seed in seeds])

    rows: list[dict[str, Any]] = []
    for decay, miss_decay in [learned, *itertools.product(decays, miss_decays)]:
        with torch.no_grad():
            ridge.raw_decay.fill_(_raw_rate(decay))
            ridge.raw_miss_decay.fill_(_raw_rate(miss_decay))
        shifted, control = play(shifted_envs), play(control_envs)
        steps = user_recovery_steps(shifted, control, switch)
        score = normalised_score(
            shifted, references["random"], references["oracle"], seed=config.seed
        )
        rows.append(
            {
                "setting": "learned" if not rows else "grid",
                "decay": decay,
                "miss_decay": miss_decay,
                "user_steps": float(np.nanmean(steps)),
                "score": score.score,
            }
        )
        print(
            f"decay {decay:.3f} miss decay {miss_decay:.3f}: steps {rows[-1]['user_steps']:.2f}"
            f" score {score.score:.3f}",
            flush=True,
        )
    return rows


def baseline_points(results: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Return each baseline's (recovery steps per user, normalised score) from a run."""
    return {
        name: (results["recovery"][name]["user_steps"], row["score"])
        for name, row in results["scores"].items()
        if name != AGENT and name not in REFERENCES
    }


def print_table(
    rows: list[dict[str, Any]],
    baselines: dict[str, tuple[float, float]],
    recorded: tuple[float, float],
) -> None:
    """Print every setting's figures, the run's own agent figures, then the baselines'."""
    fastest = min(steps for steps, _ in baselines.values())
    best = max(score for _, score in baselines.values())
    print("\n| policy | decay | miss decay | recovery steps per user | normalised score |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        mark = (
            " (beats every baseline on both)"
            if (row["user_steps"] < fastest and row["score"] > best)
            else ""
        )
        print(
            f"| {AGENT} {row['setting']}{mark} | {row['decay']:.3f} | {row['miss_decay']:.3f} "
            f"| {row['user_steps']:.2f} | {row['score']:.3f} |"
        )
    steps, score = recorded
    print(f"| {AGENT} as recorded in the run | | | {steps:.2f} | {score:.3f} |")
    for name, (steps, score) in sorted(baselines.items(), key=lambda pair: pair[1][0]):
        print(f"| {name} | | | {steps:.2f} | {score:.3f} |")


def plot(rows: list[dict[str, Any]], baselines: dict[str, tuple[float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    grid = [row for row in rows if row["setting"] == "grid"]
    points = axes.scatter(
        [row["user_steps"] for row in grid],
        [row["score"] for row in grid],
        c=[row["miss_decay"] for row in grid],
        s=[30 + 120 * row["decay"] for row in grid],
        cmap="viridis",
    )
    figure.colorbar(points, label=f"{AGENT} miss decay (marker size: decay)")
    labelled = [(f"{AGENT} (learned rates)", rows[0]["user_steps"], rows[0]["score"])]
    axes.scatter(rows[0]["user_steps"], rows[0]["score"], marker="*", s=200, c="black")
    for name, (steps, score) in baselines.items():
        axes.scatter(steps, score, marker="s", c="tab:red")
        labelled.append((name, steps, score))
    for name, steps, score in labelled:
        axes.annotate(name, (steps, score), xytext=(4, 4), textcoords="offset points")
    axes.margins(x=0.25, y=0.1)  # room for the labels
    axes.set_xlabel("recovery steps per user (fewer is faster)")
    axes.set_ylabel("normalised score over the episode")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="folder written by metarec simulate shift")
    parser.add_argument(
        "--decays",
        type=_rates,
        default=[0.05, 0.1, 0.2, 0.4],
        help="discount rates per slate of age to try, comma-separated",
    )
    parser.add_argument(
        "--miss-decays",
        type=_rates,
        default=[0.0, 0.3, 1.0, 3.0],
        help="discount rates per clickless slate to try, comma-separated",
    )
    parser.add_argument("--plot", type=Path, help="write the score-against-steps plot here")
    args = parser.parse_args()
    config, results = read_run(args.run)
    rows = sweep(config, args.decays, args.miss_decays)
    baselines = baseline_points(results)
    recorded = (results["recovery"][AGENT]["user_steps"], results["scores"][AGENT]["score"])
    print_table(rows, baselines, recorded)
    if args.plot:
        plot(rows, baselines, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
