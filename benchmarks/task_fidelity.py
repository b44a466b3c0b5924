"""Print the fidelity of the GAN and Gaussian-mixture user generators against held-out users.

Run as ``python benchmarks/task_fidelity.py --data-dir DIR [--plot FILE]``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from metarec.tasks.gan import PreferenceGAN
from metarec.tasks.report import (
    format_report,
    movielens_vectors,
    plot_curves,
    report_world,
    synthetic_vectors,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", help="dataset name or folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder searched first")
    parser.add_argument("--seed", type=int, default=0, help="seed of every fit and test")
    parser.add_argument(
        "--gan-steps", type=int, default=PreferenceGAN().steps, help="GAN generator updates"
    )
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic world")
    parser.add_argument("--plot", type=Path, default=None, help="PNG file for the GAN curves")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    worlds = [movielens_vectors(args.dataset, args.data_dir, args.seed)]
    if not args.no_synthetic:
        worlds.append(synthetic_vectors(args.seed))
    reports = []
    for world in worlds:
        report = report_world(world, args.gan_steps, args.seed)
        print(format_report(report), end="\n\n", flush=True)
        reports.append(report)
    if args.plot is not None:
        plot_curves(reports, args.plot)
        print(f"GAN training curves written to {args.plot}")


if __name__ == "__main__":
    main()
