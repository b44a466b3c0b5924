"""Scoring speed of the agent next to the baselines, on MovieLens-100K test users.

Usage:
    python benchmarks/speed.py [--run runs/ml-100k] [--data-dir DIR] [--device cpu]

Prints the median time to score one user's full catalog (batch of 1, as a
service would) and the throughput for a batch of 256 users, for the agent and
each baseline, with the agent's ratio to each. Without ``--run`` the agent is
an untrained policy of the default size, which costs the same to evaluate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from metarec.agents.agent import MetaRLAgent
from metarec.agents.policy import SlatePolicy
from metarec.baselines import EASE, ItemKNN, Popularity
from metarec.checkpoint import load_checkpoint
from metarec.config import DataConfig, ModelConfig
from metarec.data.dataset import load_dataset
from metarec.data.splits import split_users
from metarec.recommender import Recommender
from metarec.session import Session


def median_single_ms(model: Recommender, sessions: list[Session], repeats: int = 300) -> float:
    model.recommend(sessions[:1], 10)
    durations = []
    for index in range(repeats):
        started = time.perf_counter()
        model.recommend([sessions[index % len(sessions)]], 10)
        durations.append(time.perf_counter() - started)
    return float(np.median(durations) * 1000)


def batch_users_per_second(model: Recommender, sessions: list[Session], repeats: int = 5) -> float:
    batch = (sessions * (256 // len(sessions) + 1))[:256]
    model.recommend(batch, 10)
    started = time.perf_counter()
    for _ in range(repeats):
        model.recommend(batch, 10)
    return repeats * len(batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=None, help="use the checkpoint of this run")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    log = load_dataset(DataConfig(data_dir=args.data_dir))
    split = split_users(log)
    train = log.to_csr(split.train)
    if args.run is not None:
        agent = load_checkpoint(args.run, args.device).agent
    else:
        agent = MetaRLAgent(SlatePolicy(log.n_items, ModelConfig()).to(torch.device(args.device)))
    models: dict[str, Recommender] = {
        "MetaRL": agent,
        "Popularity": Popularity().fit(train),
        "ItemKNN": ItemKNN(neighbors=0).fit(train),
        "EASE": EASE(l2=500.0).fit(train),
    }
    sessions = [Session.from_history(log.user_items(int(u))[:5]) for u in split.test]
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}, items: {log.n_items}")
    print(f"{'model':<12}{'one user (ms)':>15}{'users/s @256':>15}{'agent/model (latency)':>24}")
    agent_ms = median_single_ms(agent, sessions)
    for name, model in models.items():
        single = agent_ms if model is agent else median_single_ms(model, sessions)
        throughput = batch_users_per_second(model, sessions)
        print(f"{name:<12}{single:>15.3f}{throughput:>15.0f}{agent_ms / single:>24.2f}")


if __name__ == "__main__":
    main()
