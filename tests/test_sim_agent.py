"""Meta-RL rollouts in simulated environments: hindsight targets, allowed items, training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from metarec.agents.policy import SlatePolicy
from metarec.config import ModelConfig, RLConfig
from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import make_synthetic_world
from metarec.errors import ConfigError
from metarec.meta.reinforce import EpisodeBatch, _hindsight_losses, rollout
from metarec.simulation.agent import train_simulation_agent
from metarec.simulation.config import load_simulation_config
from metarec.simulation.policies import RandomPolicy, RecommenderPolicy
from metarec.simulation.runner import run_episodes
from metarec.simulation.world import build_world, with_shift

MODEL = ModelConfig(dim=16, layers=1, heads=2, max_tokens=48)


def test_hindsight_targets_include_current_round() -> None:
    n_items = 6
    logits = torch.zeros(1, n_items)
    blocked = torch.zeros(1, n_items, dtype=torch.bool)
    alive = torch.ones(1)
    episodes = EpisodeBatch()
    episodes.slates = [torch.tensor([[0, 1]]), torch.tensor([[2, 3]])]
    episodes.clicks = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    losses = _hindsight_losses([(logits, blocked, alive)] * 2, episodes, n_items)
    uniform = float(np.log(n_items))
    # Round 0 targets items 0 and 3, round 1 only item 3; both cost log(6) under a flat softmax.
    assert losses[0].item() == pytest.approx(uniform)
    assert losses[1].item() == pytest.approx(uniform)
    sharp = torch.tensor([[5.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    sharp_losses = _hindsight_losses([(sharp, blocked, alive)] * 2, episodes, n_items)
    assert sharp_losses[0].item() < sharp_losses[1].item()


def test_rollout_respects_domain_items() -> None:
    world = make_synthetic_world(20, 60, 4, seed=0)
    allowed = np.arange(0, 60, 2)
    tasks = [
        dataclasses.replace(task, items=allowed, history=np.intersect1d(task.history, allowed))
        for task in world.tasks
    ]
    envs = [SimulatedUserEnv(world.response, tasks, slate_size=4, rounds=5) for _ in range(4)]
    policy = SlatePolicy(60, MODEL)
    generator = torch.Generator().manual_seed(0)
    episodes = rollout(policy, envs, RLConfig(batch_size=4), generator, seed=1)
    for slate in episodes.slates:
        assert np.isin(slate.numpy(), allowed).all()
    assert len(episodes.supervised) == len(episodes.slates)


def test_shifted_tasks_change_preference() -> None:
    world = make_synthetic_world(30, 80, 4, seed=1)
    config = load_simulation_config(None, ["shift.step=3", "shift.span=1"])
    targets = world.response.user_factors
    shifted = with_shift(world.tasks, targets, config.shift, np.random.default_rng(0))
    for task in shifted:
        assert task.drift_step == 3
        assert task.drift_to is not None
        np.testing.assert_array_equal(task.preference_at(2), task.preference)
        np.testing.assert_array_equal(task.preference_at(3), task.drift_to)
        assert not np.allclose(task.drift_to, task.preference), task.task_id


def test_shift_never_targets_own_preference() -> None:
    world = make_synthetic_world(2, 80, 4, seed=1)
    config = load_simulation_config(None, ["shift.step=3"])
    targets = world.response.user_factors
    for seed in range(20):
        first, second = with_shift(world.tasks, targets, config.shift, np.random.default_rng(seed))
        assert first.drift_to is not None
        assert second.drift_to is not None
        np.testing.assert_array_equal(first.drift_to, targets[1])
        np.testing.assert_array_equal(second.drift_to, targets[0])


def test_shift_rejects_single_preference() -> None:
    world = make_synthetic_world(2, 80, 4, seed=1)
    config = load_simulation_config(None, ["shift.step=3"])
    targets = world.tasks[0].preference[None]
    with pytest.raises(ConfigError, match="no preference other than"):
        with_shift(world.tasks[:1], targets, config.shift, np.random.default_rng(0))


def test_trained_agent_beats_random() -> None:
    torch.set_num_threads(1)
    config = load_simulation_config(
        None,
        [
            "world.source=synthetic",
            "world.synthetic.n_users=300",
            "world.synthetic.n_items=100",
            "world.synthetic.n_topics=4",
            "episode.rounds=8",
            "episode.slate_size=4",
            "model.dim=16",
            "model.layers=1",
            "model.max_tokens=48",
            "pretrain.epochs=4",
            "rl.iterations=4",
            "rl.batch_size=8",
            "rl.eval_every=2",
        ],
    )
    world = build_world(config)
    training = train_simulation_agent(world, config)
    envs = world.envs(world.tasks["test"], config.episode, config.model.max_tokens)
    agent = run_episodes(RecommenderPolicy(training.agent), envs, seed=3).mean_return
    random = run_episodes(RandomPolicy(3), envs, seed=3).mean_return
    assert agent > 1.5 * random, (agent, random)
    assert [record["iteration"] for record in training.history["meta_rl"]] == [0.0, 2.0, 4.0]


def test_ridge_size_above_user_count_is_config_error() -> None:
    config = load_simulation_config(
        Path(__file__).parent / "configs" / "tiny_simulation.yaml", ["baselines.dims=[12]"]
    )
    world = build_world(config)
    with pytest.raises(ConfigError, match="starting size 12"):
        train_simulation_agent(world, config, train_users=world.split.train[:10])
