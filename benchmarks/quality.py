"""Quality of the meta-RL agent next to the baselines, from one run of the main job.

Usage:
    python benchmarks/quality.py [--from-run runs/ml-100k] [--data-dir DIR] [--seed N]

Without ``--from-run`` it runs the default ``metarec run`` first. It prints, for
every K of fewshot-v1 and for interactive-v1, each model's figure and the
agent's ratio to the best baseline (the target is above 1.00, ideally 1.05).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

AGENT = "MetaRL"


def load_or_run(args: argparse.Namespace) -> dict[str, Any]:
    if args.from_run is not None:
        return json.loads((args.from_run / "metrics.json").read_text())
    from metarec.config import load_config
    from metarec.pipeline import run

    overrides = [f"seed={args.seed}"]
    if args.data_dir is not None:
        overrides.append(f"data.data_dir={args.data_dir}")
    out = Path("runs") / f"benchmark-quality-seed{args.seed}"
    return run(load_config(None, overrides), out)


def ratio_row(label: str, values: dict[str, float]) -> str:
    baselines = {name: value for name, value in values.items() if name != AGENT}
    best_name = max(baselines, key=lambda name: baselines[name])
    ratio = values[AGENT] / baselines[best_name] if baselines[best_name] > 0 else float("nan")
    cells = "  ".join(f"{values[name]:8.4f}" for name in values)
    return f"{label:<24}{cells}   {ratio:5.3f} (best baseline {best_name})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--from-run", type=Path, default=None, help="read metrics.json of this run")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = load_or_run(args)
    fewshot = results["protocols"]["fewshot-v1"]
    interactive = results["protocols"]["interactive-v1"]
    models = list(fewshot)
    print(
        f"{'metric':<24}"
        + "  ".join(f"{name[:8]:>8}" for name in models)
        + "   agent / best baseline"
    )
    for shots in sorted(fewshot[AGENT], key=int):
        for metric in ("ndcg@10", "hr@10", "recall@20"):
            values = {name: fewshot[name][shots][metric] for name in models}
            print(ratio_row(f"fewshot K={shots} {metric}", values))
    values = {name: interactive[name]["recall"] for name in models}
    print(ratio_row("interactive recall", values))
    timings = results.get("timings", {})
    if timings:
        print("time: " + ", ".join(f"{k} {v}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
