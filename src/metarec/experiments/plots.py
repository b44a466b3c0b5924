"""Figures of the simulation experiments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from metarec.simulation.scoring import NormalisedScore

MIN_GAP_SHARE = 0.1


def _save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_scores(scores: Mapping[str, NormalisedScore], path: Path, title: str) -> None:
    """Plot each policy's normalised score as a bar with its confidence interval."""
    ordered = sorted(scores.items(), key=lambda pair: pair[1].score)
    names = [name for name, _ in ordered]
    values = np.array([score.score for _, score in ordered])
    errors = np.array(
        [[score.score - score.low, score.high - score.score] for _, score in ordered]
    ).T
    figure, axes = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
    axes.barh(names, values, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
    axes.axvline(0.0, color="grey", lw=0.8)
    axes.axvline(1.0, color="grey", lw=0.8, ls="--")
    axes.set_xlabel("normalised score (0 = random, 1 = oracle), 95% CI")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    _save(figure, path)


def plot_per_step(
    scores: Mapping[str, NormalisedScore],
    gaps: np.ndarray,
    path: Path,
    title: str,
) -> None:
    """Plot the normalised reward at each step of the episode with confidence bands.

    ``gaps`` is the oracle's minus the random policy's mean reward per step.
    Steps where it is under ``MIN_GAP_SHARE`` of its largest value (most
    users have left) are not drawn, because the ratio is noise there.
    """
    shown = gaps >= MIN_GAP_SHARE * max(float(np.max(gaps)), 1e-12)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, score in scores.items():
        steps = np.arange(1, score.per_step.shape[0] + 1)
        axes.plot(steps, np.where(shown, score.per_step, np.nan), marker=".", label=name)
        axes.fill_between(
            steps,
            np.where(shown, score.per_step_low, np.nan),
            np.where(shown, score.per_step_high, np.nan),
            alpha=0.15,
        )
    axes.axhline(0.0, color="grey", lw=0.8)
    axes.axhline(1.0, color="grey", lw=0.8, ls="--")
    axes.set_ylim(-0.3, 1.3)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("step of the episode (slate number)")
    axes.set_ylabel("normalised reward at this step")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)


def plot_reward_curves(
    curves: Mapping[str, np.ndarray],
    controls: Mapping[str, np.ndarray],
    switch_step: int,
    path: Path,
    title: str,
) -> None:
    """Plot reward per step with the switch marked, and its ratio to the no-switch reward.

    The left panel draws each policy's mean reward per step with the switch
    (solid) and without it (faint). The right panel draws, from the switch
    on, the first over the second with the 90% recovery line.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, curve in curves.items():
        steps = np.arange(1, curve.shape[0] + 1)
        style = "--" if name in ("oracle", "random") else "-"
        line = left.plot(steps, curve, style, marker=".", label=name)[0]
        control = controls[name]
        left.plot(steps, control, style, color=line.get_color(), alpha=0.3)
        after = steps[switch_step:]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = curve[switch_step:] / control[switch_step:]
        right.plot(after, ratio, style, marker=".", color=line.get_color(), label=name)
    left.axvline(switch_step + 0.5, color="black", lw=1.0, ls=":", label="preference switch")
    left.set_ylabel("mean reward per user (faint: same users, no switch)")
    left.set_title(title)
    right.axhline(0.9, color="black", lw=1.0, ls=":", label="90% of no-switch reward")
    right.set_ylabel("reward with switch / reward without")
    right.set_title("after the switch")
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("step of the episode (slate number)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    _save(figure, path)


def plot_training_curves(
    histories: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]], path: Path
) -> None:
    """Plot validation (and training-task) return per pre-training epoch and meta-RL iteration."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label, history in histories.items():
        for axes, stage, key in ((left, "pretrain", "epoch"), (right, "meta_rl", "iteration")):
            records = history.get(stage, [])
            if not records:
                continue
            x = [record[key] for record in records]
            line = axes.plot(x, [r["score"] for r in records], marker="o", label=f"{label} valid")
            if "train_return" in records[0]:
                axes.plot(
                    x,
                    [r["train_return"] for r in records],
                    ls="--",
                    color=line[0].get_color(),
                    label=f"{label} train",
                )
    left.set_xlabel("pre-training epoch")
    right.set_xlabel("meta-RL iteration")
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("mean episode return")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    _save(figure, path)
