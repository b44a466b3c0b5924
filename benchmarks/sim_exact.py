"""Exact optimum against the myopic oracle on tiny synthetic tasks.

Usage:
    python benchmarks/sim_exact.py

Solves each task of a 7-item synthetic world by policy iteration for a few
slate sizes and patience values, and prints the optimal and the oracle's
expected return and the relative gap.
"""

from __future__ import annotations

from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import make_synthetic_world
from metarec.simulation.exact import solve_exact

SETTINGS = [(1, 4, None), (1, 4, 1), (1, 4, 2), (2, 3, None), (2, 3, 1)]


def main() -> None:
    world = make_synthetic_world(
        4, 7, 3, seed=0, history_length=0, log_length=2, offset=-2.0, strength=4.0
    )
    for slate_size, rounds, patience in SETTINGS:
        env = SimulatedUserEnv(
            world.response, world.tasks, slate_size=slate_size, rounds=rounds, patience=patience
        )
        for task in range(3):
            solution = solve_exact(env, task=task)
            gap = (solution.optimal_return - solution.oracle_return) / solution.optimal_return
            print(
                f"slate {slate_size}, {rounds} rounds, patience {patience}, task {task}: "
                f"optimal {solution.optimal_return:.4f}, oracle {solution.oracle_return:.4f}, "
                f"gap {gap:.2%}"
            )


if __name__ == "__main__":
    main()
