"""Exact policy iteration on tiny simulated-user MDPs, against the oracle and the environment."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import SyntheticWorld, make_synthetic_world
from metarec.errors import ConfigError
from metarec.simulation.exact import solve_exact
from metarec.simulation.policies import OraclePolicy
from metarec.simulation.runner import run_episodes


@pytest.fixture(scope="module")
def tiny() -> SyntheticWorld:
    return make_synthetic_world(
        4, 7, 3, seed=0, history_length=0, log_length=2, offset=-2.0, strength=4.0
    )


def make_env(
    world: SyntheticWorld, slate_size: int, rounds: int, patience: int | None, reward: str = "click"
) -> SimulatedUserEnv:
    return SimulatedUserEnv(
        world.response,
        world.tasks,
        slate_size=slate_size,
        rounds=rounds,
        patience=patience,
        reward=reward,
    )


@pytest.mark.parametrize("patience", [None, 1])
@pytest.mark.parametrize("task", [0, 1, 2])
def test_oracle_optimal_for_single_items(
    tiny: SyntheticWorld, patience: int | None, task: int
) -> None:
    # With one item per slate, showing items by decreasing attraction is optimal.
    solution = solve_exact(make_env(tiny, 1, 4, patience), task=task)
    assert solution.optimal_return == pytest.approx(solution.oracle_return, abs=1e-12)
    assert solution.optimal_first_slate == solution.oracle_first_slate
    assert solution.iterations == 1


@pytest.mark.parametrize("reward", ["click", "revenue"])
def test_oracle_myopic_for_pairs(tiny: SyntheticWorld, reward: str) -> None:
    # With two positions the oracle puts the two best items into one slate, but spreading
    # them over the first positions of two rounds earns more when the second is seldom seen.
    solution = solve_exact(make_env(tiny, 2, 3, None, reward), task=0)
    assert solution.optimal_return > solution.oracle_return + 1e-3
    assert solution.iterations >= 2


def test_patience_lowers_both_returns(tiny: SyntheticWorld) -> None:
    patient = solve_exact(make_env(tiny, 2, 3, None), task=1)
    impatient = solve_exact(make_env(tiny, 2, 3, 1), task=1)
    assert impatient.optimal_return < patient.optimal_return
    assert impatient.oracle_return < patient.oracle_return
    assert impatient.oracle_return <= impatient.optimal_return


def test_oracle_return_matches_environment(tiny: SyntheticWorld) -> None:
    solution = solve_exact(make_env(tiny, 2, 3, 1), task=0)
    copies = [tiny.tasks[0]] * 3000
    results = run_episodes(
        OraclePolicy(),
        lambda: SimulatedUserEnv(tiny.response, copies, slate_size=2, rounds=3, patience=1),
        seed=0,
        batch_size=500,
    )
    error = results.returns.std() / np.sqrt(results.returns.shape[0])
    assert abs(results.mean_return - solution.oracle_return) < 4 * error


def test_rejects_large_catalogs() -> None:
    world = make_synthetic_world(2, 30, 3, seed=0, history_length=0, log_length=2)
    with pytest.raises(ConfigError, match="smaller catalog"):
        solve_exact(make_env(world, 1, 2, None))
