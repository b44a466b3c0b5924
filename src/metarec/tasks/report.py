"""Measure how close GAN and Gaussian-mixture virtual users come to real held-out users.

``benchmarks/task_fidelity.py`` prints these reports from the command line.

For MovieLens-100K the user vectors are those of ``fit_response_model`` on the whole
log. For the synthetic world they are the known preferences of its users. In both,
generators are fit on training users (sha1 buckets 3-9) and compared with validation
and test users (buckets 0-2), next to the training users themselves as the floor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarec.config import DataConfig
from metarec.data.dataset import load_dataset
from metarec.data.splits import UserSplit, split_users
from metarec.envs.fit_response import fit_response_model
from metarec.envs.synthetic import make_synthetic_world
from metarec.tasks.density import GaussianMixtureGenerator
from metarec.tasks.fidelity import FidelityRow, fidelity_table, format_fidelity_table
from metarec.tasks.gan import GanCurve, PreferenceGAN
from metarec.tasks.generative import PreferenceGenerator

logger = logging.getLogger(__name__)

SYNTHETIC_USERS = 1000
SYNTHETIC_ITEMS = 500
SYNTHETIC_TOPICS = 16


@dataclass(frozen=True)
class WorldVectors:
    """The user vectors of one world and its user split."""

    name: str
    vectors: np.ndarray
    split: UserSplit


@dataclass(frozen=True)
class WorldReport:
    """The fidelity rows of one world, the GAN's training curve and the GMM size."""

    world: WorldVectors
    rows: list[FidelityRow]
    gan_curve: GanCurve
    mixture_components: int
    seconds: float


def movielens_vectors(dataset: str, data_dir: Path | None, seed: int) -> WorldVectors:
    """Fit the response model on a MovieLens log and return its user factors."""
    log = load_dataset(DataConfig(dataset=dataset, data_dir=data_dir))
    model = fit_response_model(log, seed=seed)
    return WorldVectors(log.name, model.user_factors, split_users(log))


def synthetic_vectors(seed: int) -> WorldVectors:
    """Draw a synthetic world and return its users' known preference vectors."""
    world = make_synthetic_world(SYNTHETIC_USERS, SYNTHETIC_ITEMS, SYNTHETIC_TOPICS, seed)
    name = f"synthetic ({SYNTHETIC_USERS} users, {SYNTHETIC_TOPICS} topics)"
    return WorldVectors(name, world.response.user_factors, split_users(world.log))


def report_world(world: WorldVectors, gan_steps: int, seed: int) -> WorldReport:
    """Fit both generators on the training users and run the two-sample tests."""
    start = time.perf_counter()
    gan = PreferenceGAN(steps=gan_steps, seed=seed)
    mixture = GaussianMixtureGenerator(seed=seed)
    generators: dict[str, PreferenceGenerator] = {"GMM (BIC)": mixture, "WGAN-GP": gan}
    held_out = np.concatenate([world.split.valid, world.split.test])
    rows = fidelity_table(
        generators, world.vectors[world.split.train], world.vectors[held_out], seed=seed
    )
    seconds = time.perf_counter() - start
    return WorldReport(world, rows, gan.curve_, mixture.n_components_, seconds)


def format_report(report: WorldReport) -> str:
    """Format one world's table with the generator details under it."""
    curve = report.gan_curve
    lines = [
        f"## {report.world.name}, dim {report.world.vectors.shape[1]}",
        "",
        format_fidelity_table(report.rows),
        "",
        f"GMM components chosen by BIC: {report.mixture_components}",
        f"WGAN-GP Wasserstein estimate: {curve.wasserstein[0]:.3f} at step {curve.step[0]}, "
        f"{curve.wasserstein[-1]:.3f} at step {curve.step[-1]}",
        f"generators and tests took {report.seconds:.0f} s",
    ]
    return "\n".join(lines)


def plot_curves(reports: list[WorldReport], path: Path) -> None:
    """Plot the GAN's Wasserstein estimate and gradient penalty against generator steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for report in reports:
        curve = report.gan_curve
        axes[0].plot(curve.step, curve.wasserstein, label=report.world.name)
        axes[1].plot(curve.step, curve.gradient_penalty, label=report.world.name)
    axes[0].set_ylabel("Wasserstein estimate (standardised units)")
    axes[1].set_ylabel("gradient penalty")
    for axis in axes:
        axis.set_xlabel("generator step")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
