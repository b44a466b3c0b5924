"""The Markdown report of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metarec.config import RunConfig
from metarec.evaluation.plots import plot_fewshot, plot_interactive, plot_training
from metarec.fileio import atomic_write_text

METRICS = ("hr@10", "ndcg@10", "recall@20")


def write_report(folder: Path, results: dict[str, Any], config: RunConfig) -> None:
    """Write ``report.md`` and the plots it shows."""
    protocols = results["protocols"]
    plot_fewshot(protocols["fewshot-v1"], folder / "fewshot.png")
    plot_interactive(protocols["interactive-v1"], folder / "interactive.png")
    plot_training(results.get("training", {}), folder / "training.png")
    atomic_write_text(folder / "report.md", render_report(results, config))


def render_report(results: dict[str, Any], config: RunConfig) -> str:
    dataset = results["dataset"]
    timings = results["timings"]
    lines = [
        f"# metarec run `{config.name}`",
        "",
        f"Dataset `{dataset['name']}`: {dataset['users']} users, {dataset['items']} items, "
        f"{dataset['interactions']} interactions. Users split by `sha1(user_id) % 10`: "
        f"{dataset['train_users']} training, {dataset['validation_users']} validation, "
        f"{dataset['test_users']} test. All figures below are on test users; every choice "
        "of hyper-parameters and checkpoints was made on validation users. Seed "
        f"{config.seed}.",
        "",
        "## fewshot-v1",
        "",
        "Support = first K interactions, query = all the rest; every item except the "
        "support is ranked. NDCG@10 uses binary gain and the ideal DCG over "
        "min(|query|, 10) positions; Recall@20 = hits in the top 20 / min(|query|, 20).",
        "",
    ]
    lines += _fewshot_tables(results["protocols"]["fewshot-v1"], config.protocol.headline_shots)
    lines += ["", "![NDCG@10 against K](fewshot.png)", "", "## interactive-v1", ""]
    lines += _interactive_table(results["protocols"]["interactive-v1"], config)
    lines += [
        "",
        "![clicks per round](interactive.png)",
        "",
        "## Training",
        "",
        "![training curves](training.png)",
        "",
        "## Time",
        "",
        "| phase | seconds |",
        "| --- | ---: |",
    ]
    lines += [
        f"| {name[:-2]} | {value:.1f} |" for name, value in timings.items() if name.endswith("_s")
    ]
    lines += [
        "",
        f"Scoring one user's full catalog: {timings['score_one_user_ms']:.2f} ms (median).",
    ]
    return "\n".join(lines) + "\n"


def _fewshot_tables(fewshot: dict[str, dict[str, dict[str, float]]], headline: int) -> list[str]:
    lines: list[str] = []
    models = list(fewshot)
    shots = sorted({int(k) for by_shots in fewshot.values() for k in by_shots})
    for metric in METRICS:
        lines += [f"**{metric.upper()}** (K = {headline} is the headline)", ""]
        lines.append("| model | " + " | ".join(f"K={k}" for k in shots) + " |")
        lines.append("| --- |" + " ---: |" * len(shots))
        for model in models:
            cells = [f"{fewshot[model][str(k)][metric]:.4f}" for k in shots]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    users = [f"K={k}: {int(fewshot[models[0]][str(k)]['users'])}" for k in shots]
    lines.append("Users with a non-empty query: " + ", ".join(users) + ".")
    return lines


def _interactive_table(interactive: dict[str, dict[str, Any]], config: RunConfig) -> list[str]:
    protocol = config.protocol
    budget = protocol.rounds * protocol.slate_size
    lines = [
        f"Each test user starts from the first {protocol.interactive_shots} interactions; "
        f"{protocol.rounds} slates of {protocol.slate_size} unseen items follow, a slate item in "
        "the query set is a click, and the recommender sees clicks and skips before the next "
        f"slate. Interactive recall = total clicks / min(|query|, {budget}).",
        "",
        "| model | interactive recall | "
        + " | ".join(f"r{r + 1}" for r in range(protocol.rounds))
        + " |",
        "| --- | ---: |" + " ---: |" * protocol.rounds,
    ]
    for model, result in interactive.items():
        curve = " | ".join(f"{value:.2f}" for value in result["clicks_per_round"])
        lines.append(f"| {model} | {result['recall']:.4f} | {curve} |")
    return lines
