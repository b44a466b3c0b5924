"""Fidelity of the MovieLens-100K simulator and the scores of reference policies in it.

Usage:
    python benchmarks/sim_fidelity.py [--data-dir DIR] [--obd-dir DIR] [--epochs 10] [--seed 0]

Prints three things. First, how well a response model fit without the last
20% of each validation user's interactions predicts them, next to a
popularity-only model. Second, when ``--obd-dir`` is given, the
position-bias exponent estimated from the Open Bandit Dataset's
uniform-random logs. Third, the mean return of the oracle, random and
Popularity policies on test users of the simulator fit on the whole log,
and Popularity's normalised score.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from metarec.baselines import Popularity
from metarec.config import DataConfig
from metarec.data.dataset import load_dataset
from metarec.data.splits import split_users
from metarec.envs.fit_response import fit_response_model, response_fidelity
from metarec.envs.position_bias import estimate_position_eta, read_open_bandit_random
from metarec.envs.simulated import SimulatedUserEnv
from metarec.simulation.policies import OraclePolicy, RandomPolicy, RecommenderPolicy
from metarec.simulation.runner import run_episodes
from metarec.simulation.scoring import format_score, normalised_score
from metarec.tasks.generator import user_tasks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--obd-dir", type=Path, default=None, help="open-bandit-dataset-small/")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of each fit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    log = load_dataset(DataConfig(data_dir=args.data_dir))
    split = split_users(log)
    figures = response_fidelity(log, split.valid, epochs=args.epochs, seed=args.seed)
    print("fidelity on hidden last 20% of validation users' interactions:")
    for key, value in figures.items():
        print(f"  {key:28s} {value:.4f}")

    if args.obd_dir is not None:
        estimate = estimate_position_eta(*read_open_bandit_random(args.obd_dir))
        rates = ", ".join(f"{rate:.4f}" for rate in estimate.click_rates)
        print(
            f"Open Bandit random logs: eta {estimate.eta:.3f} (95% CI {estimate.low:.3f} to "
            f"{estimate.high:.3f}); click rate per position {rates}; "
            f"{int(estimate.impressions.sum())} impressions, {int(estimate.clicks.sum())} clicks"
        )

    response = fit_response_model(log, epochs=args.epochs, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    tasks = user_tasks(log, response, split.test, 5, rng)
    train = log.to_csr(split.train)
    popularity = RecommenderPolicy(Popularity().fit(train))

    def factory() -> SimulatedUserEnv:
        return SimulatedUserEnv(response, tasks, slate_size=10, rounds=20)

    oracle = run_episodes(OraclePolicy(), factory, seed=args.seed)
    random = run_episodes(RandomPolicy(args.seed), factory, seed=args.seed)
    popular = run_episodes(popularity, factory, seed=args.seed)
    print(f"simulator: {len(tasks)} test users, 5-item histories, slate 10, 20 rounds, patience 3")
    for results in (oracle, random, popular):
        print(
            f"  {results.policy:10s} mean return {results.mean_return:.3f}, "
            f"mean length {results.lengths.mean():.2f}, quit {results.quit.mean():.3f}"
        )
    print("  " + format_score(normalised_score(popular, random, oracle, seed=args.seed)))


if __name__ == "__main__":
    main()
