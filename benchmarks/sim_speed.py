"""Steps per second of the simulated-user environments on the MovieLens-100K response model.

Usage:
    python benchmarks/sim_speed.py [--data-dir DIR] [--num-envs 16 256] [--seconds 2]

Compares one SimulatedUserEnv stepped in a Python loop, gymnasium's
SyncVectorEnv over B copies, and the native SimulatedUserVectorEnv with B
users. Slates are drawn before timing (items outside each user's history,
in a random order) and users never quit, so every variant steps the same
users through the same slates and the policy costs nothing. Each figure is
the best of 3 timing windows of ``--seconds`` each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium
import numpy as np
import torch

from metarec.config import DataConfig
from metarec.data.dataset import load_dataset
from metarec.envs.fit_response import fit_response_model
from metarec.envs.response import ResponseModel
from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.vector import SimulatedUserVectorEnv
from metarec.tasks.generator import user_tasks
from metarec.tasks.task import Task

ROUNDS = 20
SLATE_SIZE = 10


def draw_slates(tasks: list[Task], n_items: int, seed: int) -> np.ndarray:
    """Return ``(len(tasks), ROUNDS, SLATE_SIZE)`` slates of items outside each history."""
    rng = np.random.default_rng(seed)
    slates = np.empty((len(tasks), ROUNDS, SLATE_SIZE), dtype=np.int64)
    for row, task in enumerate(tasks):
        free = np.setdiff1d(np.arange(n_items), task.history)
        slates[row] = rng.permutation(free)[: ROUNDS * SLATE_SIZE].reshape(ROUNDS, SLATE_SIZE)
    return slates


def steps_per_second(play_episode: Callable[[], int], seconds: float, windows: int = 3) -> float:
    """Return the best rate of ``windows`` timing windows, which discounts other load."""
    play_episode()
    rates = []
    for _ in range(windows):
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            steps += play_episode()
        rates.append(steps / (time.perf_counter() - started))
    return max(rates)


def single_env(response: ResponseModel, tasks: list[Task], slates: np.ndarray) -> Callable[[], int]:
    env = SimulatedUserEnv(response, tasks, patience=None)

    def play() -> int:
        for user in range(len(tasks)):
            env.reset(seed=user, options={"task": user})
            for step in range(ROUNDS):
                env.step(slates[user, step])
        return len(tasks) * ROUNDS

    return play


def sync_vector_env(
    response: ResponseModel, tasks: list[Task], slates: np.ndarray
) -> Callable[[], int]:
    def make(task: Task) -> Callable[[], SimulatedUserEnv]:
        return lambda: SimulatedUserEnv(response, [task], patience=None)

    envs = gymnasium.vector.SyncVectorEnv([make(task) for task in tasks])

    def play() -> int:
        envs.reset(seed=0)
        for step in range(ROUNDS):
            envs.step(slates[:, step])
        return len(tasks) * ROUNDS

    return play


def native_vector_env(
    response: ResponseModel, tasks: list[Task], slates: np.ndarray
) -> Callable[[], int]:
    envs = SimulatedUserVectorEnv(response, tasks, len(tasks), patience=None)
    order = np.arange(len(tasks))

    def play() -> int:
        envs.reset(seed=0, options={"task": order})
        for step in range(ROUNDS):
            envs.step(slates[:, step])
        return len(tasks) * ROUNDS

    return play


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding ml-100k/")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each timing window")
    args = parser.parse_args()
    torch.set_num_threads(1)

    log = load_dataset(DataConfig(data_dir=args.data_dir))
    response = fit_response_model(log, epochs=2, seed=0)
    all_tasks = user_tasks(log, response, np.arange(log.n_users), 10, np.random.default_rng(0))
    print(
        f"ML-100K response model: {response.n_items} items, dim {response.dim}; "
        f"slate {SLATE_SIZE}, {ROUNDS} rounds, click reward, no quitting"
    )
    print(
        f"{'B':>5} {'single':>12} {'SyncVectorEnv':>14} {'native':>12} "
        f"{'sync/single':>12} {'native/single':>14} {'native/sync':>12}"
    )
    for batch in args.num_envs:
        tasks = all_tasks[:batch]
        slates = draw_slates(tasks, response.n_items, seed=batch)
        single = steps_per_second(single_env(response, tasks, slates), args.seconds)
        sync = steps_per_second(sync_vector_env(response, tasks, slates), args.seconds)
        native = steps_per_second(native_vector_env(response, tasks, slates), args.seconds)
        print(
            f"{batch:>5} {single:>12,.0f} {sync:>14,.0f} {native:>12,.0f} "
            f"{sync / single:>12.2f} {native / single:>14.2f} {native / sync:>12.2f}"
        )


if __name__ == "__main__":
    main()
