"""Figures of a run: NDCG@10 against K, clicks per round, training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_fewshot(fewshot: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Plot NDCG@10 against the support size K, one line per model."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for model, by_shots in fewshot.items():
        shots = sorted(int(k) for k in by_shots)
        axes.plot(shots, [by_shots[str(k)]["ndcg@10"] for k in shots], marker="o", label=model)
    axes.set_xscale("log")
    axes.set_xticks(shots, [str(k) for k in shots])
    axes.set_xlabel("support size K (first K interactions)")
    axes.set_ylabel("NDCG@10 on test users")
    axes.set_title("fewshot-v1")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_interactive(interactive: dict[str, dict[str, Any]], path: Path) -> None:
    """Plot mean clicks per round of interactive-v1, one line per model."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for model, result in interactive.items():
        curve = result["clicks_per_round"]
        axes.plot(
            range(1, len(curve) + 1), curve, marker="o", label=f"{model} ({result['recall']:.3f})"
        )
    axes.set_xlabel("round")
    axes.set_ylabel("mean clicks per slate")
    axes.set_title("interactive-v1 (legend: interactive recall)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_training(history: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Plot training loss and validation score of pre-training, and validation score of meta-RL."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    pretrain = [record for record in history.get("pretrain", []) if record["epoch"] > 0]
    if pretrain:
        epochs = [record["epoch"] for record in pretrain]
        left.plot(epochs, [record["train_loss"] for record in pretrain], color="tab:blue")
        left.set_ylabel("training loss (next items)", color="tab:blue")
        twin = left.twinx()
        twin.plot(epochs, [record["score"] for record in pretrain], color="tab:orange")
        twin.set_ylabel("validation score", color="tab:orange")
    left.set_xlabel("pre-training epoch")
    left.set_title("pre-training")
    meta_rl = history.get("meta_rl", [])
    if meta_rl:
        right.plot([r["iteration"] for r in meta_rl], [r["score"] for r in meta_rl], marker="o")
    right.set_xlabel("meta-RL iteration")
    right.set_ylabel("validation score")
    right.set_title("meta-RL (REINFORCE)")
    right.grid(alpha=0.3)
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(path)
