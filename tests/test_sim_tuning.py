"""Validation grid search of the simulation baselines on a small synthetic world."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from metarec.config import ModelConfig
from metarec.data.splits import UserSplit, split_users
from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import SyntheticWorld, make_synthetic_world
from metarec.errors import ConfigError
from metarec.simulation.bandits import EpsilonGreedy, LinUCB, ThompsonSampling
from metarec.simulation.dqn import DQNConfig
from metarec.simulation.embeddings import fit_log_embeddings
from metarec.simulation.policies import RecommenderPolicy
from metarec.simulation.tuning import (
    BanditGrid,
    DQNTuning,
    as_policy,
    chosen_values,
    tune_simulation_baselines,
    validation_return,
)

torch.set_num_threads(1)

GRID = BanditGrid(
    dims=(4, 8),
    epsilons=(0.0, 0.2),
    ridges=(3.0,),
    prior_strengths=(3.0,),
    noises=(0.03, 1.0),
    alphas=(0.03, 1.0),
)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return make_synthetic_world(300, 120, 4, seed=1)


@pytest.fixture(scope="module")
def split(world: SyntheticWorld) -> UserSplit:
    return split_users(world.log)


def _envs(world: SyntheticWorld, users: np.ndarray) -> Callable[[], SimulatedUserEnv]:
    tasks = [world.tasks[u] for u in users]
    return lambda: SimulatedUserEnv(world.response, tasks, slate_size=5, rounds=8, max_tokens=64)


def test_tuning_picks_best_grid_point(world: SyntheticWorld, split: UserSplit) -> None:
    valid = _envs(world, split.valid)
    tuned = tune_simulation_baselines(world.log, split.train, valid, grid=GRID, seed=2)
    assert list(tuned.models) == ["Popularity", "EpsilonGreedy", "ThompsonSampling", "LinUCB"]
    embeddings = {d: fit_log_embeddings(world.log, split.train, d, seed=2) for d in GRID.dims}
    scores = {
        (d, noise): validation_return(
            ThompsonSampling(embeddings[d], prior_strength=3.0, noise=noise, seed=2), valid, 2
        )
        for d in GRID.dims
        for noise in GRID.noises
    }
    best_dim, best_noise = max(scores, key=lambda key: scores[key])
    chosen = tuned.params["ThompsonSampling"]
    assert (chosen["dim"], chosen["noise"]) == (best_dim, best_noise)
    assert tuned.validation_return["ThompsonSampling"] == pytest.approx(max(scores.values()))
    for name in ("EpsilonGreedy", "ThompsonSampling", "LinUCB"):
        model = tuned.models[name]
        assert validation_return(model, valid, 2) == pytest.approx(tuned.validation_return[name])
    # The bandits beat popularity on this world's validation users by a wide margin.
    assert tuned.validation_return["LinUCB"] > 1.5 * tuned.validation_return["Popularity"]
    assert len(chosen_values(tuned)) == 4


def test_tuned_embeddings_come_from_training_users(world: SyntheticWorld, split: UserSplit) -> None:
    grid = BanditGrid(dims=(4,), epsilons=(0.0,), ridges=(3.0,), prior_strengths=(3.0,))
    tuned = tune_simulation_baselines(
        world.log, split.train, _envs(world, split.valid), grid=grid, seed=0
    )
    model = tuned.models["LinUCB"]
    assert isinstance(model, LinUCB)
    expected = fit_log_embeddings(world.log, split.train, 4, seed=0)
    np.testing.assert_array_equal(model.embeddings.vectors, expected.vectors)


def test_tuning_trains_dqn_candidates(world: SyntheticWorld, split: UserSplit) -> None:
    grid = BanditGrid(dims=(4,), epsilons=(0.0,), ridges=(3.0,), prior_strengths=(3.0,))
    small = ModelConfig(dim=16, layers=1, heads=2, dropout=0.0, max_tokens=64)
    configs = (
        DQNConfig(steps=20, envs=8, batch_size=16, warmup=16, lr=3e-3, eval_every=10),
        DQNConfig(steps=20, envs=8, batch_size=16, warmup=16, lr=1e-4, eval_every=10),
    )
    dqn = DQNTuning(_envs(world, split.train), small, configs)
    valid = _envs(world, split.valid)
    tuned = tune_simulation_baselines(world.log, split.train, valid, grid=grid, dqn=dqn, seed=0)
    assert "DQN" in tuned.models
    assert tuned.params["DQN"]["lr"] in (3e-3, 1e-4)
    reevaluated = validation_return(tuned.models["DQN"], valid, 0)
    assert reevaluated == pytest.approx(tuned.validation_return["DQN"])


def test_as_policy_keeps_epsilon_greedy(world: SyntheticWorld, split: UserSplit) -> None:
    embeddings = fit_log_embeddings(world.log, split.train, 4)
    greedy = EpsilonGreedy(embeddings, epsilon=0.1)
    assert as_policy(greedy) is greedy
    assert isinstance(as_policy(LinUCB(embeddings)), RecommenderPolicy)


def test_tuning_rejects_bad_settings(world: SyntheticWorld, split: UserSplit) -> None:
    with pytest.raises(ConfigError, match=r"BanditGrid\.dims is empty"):
        BanditGrid(dims=())
    with pytest.raises(ConfigError, match="trials must be at least 1"):
        tune_simulation_baselines(world.log, split.train, _envs(world, split.valid), trials=0)
