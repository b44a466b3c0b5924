"""The agent against every baseline over several seeds of a simulation experiment.

Usage:
    metarec simulate adaptation --world synthetic --seed 1 --out runs/adapt-synthetic-1
    ...
    python benchmarks/sim_seeds.py runs/adapt-synthetic-0 runs/adapt-synthetic-1 ...

Reads the ``results.json`` and ``config.yaml`` of each run folder written by
``metarec simulate adaptation`` or ``metarec simulate shift``. For each
experiment and world it prints every policy's normalised score per seed and
the mean over seeds. Then it prints the agent's score minus each baseline's,
with the paired 95% interval of each seed. For shift runs it also prints
each policy's mean recovery steps per user and the agent's minus each
baseline's with paired intervals, then the recovery time of the mean
curve against the no-switch episodes, the first slate share, the reward
kept and the mean reward per step after the switch. A seed changes the
training draws, the episode seeds and, for synthetic users, the world
itself.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

AGENT = "MetaRL"
EXPERIMENTS = ("adaptation", "shift")

Run = tuple[int, dict[str, Any]]


def read_run(folder: Path) -> tuple[str, str, int, dict[str, Any]]:
    """Return the experiment, the world, the seed and the results of one run folder.

    Raises SystemExit with a one-line message when the folder is not a
    finished adaptation or shift run.
    """
    if not folder.is_dir():
        raise SystemExit(f"error: folder {folder} not found; pass folders written by --out")
    try:
        results = json.loads((folder / "results.json").read_text())
        config = yaml.safe_load((folder / "config.yaml").read_text())
        experiment, world, seed = results["experiment"], results["world"], int(config["seed"])
        scores, differences = results["scores"], results["agent_minus_baseline"]
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error.filename} not found; rerun the experiment") from None
    except (ValueError, TypeError, KeyError, yaml.YAMLError) as error:
        raise SystemExit(
            f"error: {folder} is not a finished experiment run ({type(error).__name__}: "
            f"{error}); rerun metarec simulate into it"
        ) from None
    if experiment not in EXPERIMENTS:
        raise SystemExit(
            f"error: {folder} contains a '{experiment}' run; this script compares "
            f"{' and '.join(EXPERIMENTS)} runs"
        )
    if AGENT not in scores or set(differences) != set(scores) - {AGENT}:
        raise SystemExit(f"error: {folder} has no {AGENT} score next to its baselines")
    if experiment == "shift" and not all(
        "user_steps" in row for row in results.get("recovery", {}).values()
    ):
        raise SystemExit(
            f"error: {folder} has no recovery steps per user; rerun metarec simulate shift into it"
        )
    return experiment, world, seed, results


def print_scores(runs: list[Run]) -> None:
    seeds = [seed for seed, _ in runs]
    names = sorted(runs[0][1]["scores"], key=lambda name: -runs[0][1]["scores"][name]["score"])
    print("| policy | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean |")
    print("| --- |" + " ---: |" * (len(seeds) + 1))
    for name in names:
        values = [results["scores"][name]["score"] for _, results in runs]
        cells = " | ".join(f"{value:.3f}" for value in values)
        print(f"| {name} | {cells} | {np.mean(values):.3f} |")

    print(f"\n{AGENT} minus each baseline (95% paired interval over test users):\n")
    differences = {
        name: [results["agent_minus_baseline"][name] for _, results in runs]
        for name in names
        if name != AGENT
    }
    _print_differences(seeds, differences, ("difference", "low", "high"), ".3f", "ahead")


def _print_differences(
    seeds: list[int],
    differences: dict[str, list[dict[str, Any]]],
    keys: tuple[str, str, str],
    spec: str,
    better: str,
) -> None:
    """Print one row per baseline: the agent's difference and paired interval in each seed.

    ``keys`` names the difference and its interval ends in each record. The
    last column counts the seeds where the agent is ``better``: "ahead"
    (difference above 0) or "faster" (below 0).
    """
    value, low, high = keys
    sign = 1 if better == "ahead" else -1
    print("| baseline | " + " | ".join(f"seed {seed}" for seed in seeds) + f" | {better} in |")
    print("| --- |" + " --- |" * len(seeds) + " ---: |")
    for name, rows in differences.items():
        cells = " | ".join(
            f"{_signed(row[value], spec)} [{_signed(row[low], spec)}, {_signed(row[high], spec)}]"
            for row in rows
        )
        wins = sum(row[value] is not None and sign * row[value] > 0 for row in rows)
        print(f"| {name} | {cells} | {wins} of {len(rows)} |")


def _signed(value: float | None, spec: str) -> str:
    # results.json writes NaN as null, e.g. when no user is left to compare.
    return "n/a" if value is None else format(value, "+" + spec)


def print_user_recovery(runs: list[Run]) -> None:
    seeds = [seed for seed, _ in runs]
    print("\nMean recovery steps per user (95% interval over users):\n")
    print("| policy | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean |")
    print("| --- |" + " ---: |" * (len(seeds) + 1))
    # Policies without steps (NaN) go last.
    names = sorted(
        runs[0][1]["recovery"],
        key=lambda name: (np.isnan(_mean_steps(runs, name)), _mean_steps(runs, name)),
    )
    for name in names:
        rows = [results["recovery"][name] for _, results in runs]
        cells = " | ".join(
            f"{_number(row['user_steps'])} [{_number(row['user_low'])}, "
            f"{_number(row['user_high'])}]"
            for row in rows
        )
        print(f"| {name} | {cells} | {_number(_mean_steps(runs, name))} |")
    print(f"\n{AGENT} minus each baseline, recovery steps per user (95% paired interval):\n")
    differences = {
        name: [results["agent_minus_baseline_shares"][name] for _, results in runs]
        for name in runs[0][1]["agent_minus_baseline_shares"]
    }
    _print_differences(seeds, differences, ("steps", "steps_low", "steps_high"), ".2f", "faster")


def _mean_steps(runs: list[Run], name: str) -> float:
    # A policy whose users all left before the switch has no steps (null in results.json).
    values = [results["recovery"][name]["user_steps"] for _, results in runs]
    return float("nan") if None in values else float(np.mean(values))


def _number(value: float | None) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.2f}"


def print_recovery(runs: list[Run]) -> None:
    seeds = [seed for seed, _ in runs]
    print(
        "\nMean curve: recovery steps against the no-switch episodes, first slate share, "
        "reward kept, and reward per step after the switch:\n"
    )
    print("| policy | " + " | ".join(f"seed {seed}" for seed in seeds) + " |")
    print("| --- |" + " --- |" * len(seeds))
    for name in runs[0][1]["recovery"]:
        rows = [results["recovery"][name] for _, results in runs]
        cells = " | ".join(
            f"{_steps(row['control_recovery_steps'])} steps, first {row['first']:.3f}, "
            f"kept {row['kept']:.3f}, after {row['post_switch_reward']:.3f}"
            for row in rows
        )
        print(f"| {name} | {cells} |")


def _steps(value: float | None) -> str:
    # results.json writes inf (not recovered) and NaN alike as null.
    return "no recovery" if value is None else f"{value:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="experiment output folders")
    args = parser.parse_args()
    groups: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for folder in args.runs:
        experiment, world, seed, results = read_run(folder)
        if seed in groups[experiment, world]:
            raise SystemExit(
                f"error: two {experiment} runs on {world} with seed {seed}; pass each seed once"
            )
        groups[experiment, world][seed] = results
    for (experiment, world), by_seed in groups.items():
        runs = sorted(by_seed.items())
        print(f"\n## {experiment}, {world}: normalised score on test users\n")
        print_scores(runs)
        if experiment == "shift":
            print_user_recovery(runs)
            print_recovery(runs)


if __name__ == "__main__":
    main()
