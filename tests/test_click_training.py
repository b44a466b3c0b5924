"""Click-model meta-training in simulation: warm-up, allowed items, and learning from clicks."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from metarec.agents.policy import SlatePolicy
from metarec.config import ModelConfig, RLConfig
from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import make_synthetic_world
from metarec.meta.clicks import (
    WARMUP_ITERATIONS,
    PositionTerms,
    click_training,
    episode_click_loss,
)
from metarec.progress import SilentReporter
from metarec.simulation.agent import validation_scorer
from metarec.simulation.config import load_simulation_config
from metarec.simulation.embeddings import fit_log_embeddings
from metarec.simulation.world import EnvFactory, build_world

MODEL = ModelConfig(
    dim=16,
    encoder="none",
    ridge_head=True,
    ridge_dim=4,
    ridge_slate_size=4,
    max_tokens=64,
    dropout=0.0,
)


def _policy(n_items: int, log_counts: np.ndarray) -> SlatePolicy:
    torch.manual_seed(0)
    policy = SlatePolicy(n_items, MODEL)
    policy.init_output_bias(log_counts)
    return policy


def test_warmup_leaves_the_policy_unchanged() -> None:
    world = make_synthetic_world(40, 60, 4, seed=0)
    envs = [SimulatedUserEnv(world.response, world.tasks, slate_size=4, rounds=5) for _ in range(4)]
    policy = _policy(60, np.ones(60))
    before = copy.deepcopy(policy.state_dict())
    changed: list[bool] = []

    def snapshot(current: SlatePolicy) -> dict[str, float]:
        state = current.state_dict()
        changed.append(any(not torch.equal(state[name], before[name]) for name in before))
        return {"score": 0.0}

    iterations = 4 * WARMUP_ITERATIONS + 4  # long enough for the full warm-up
    config = RLConfig(
        objective="clicks", iterations=iterations, batch_size=4, eval_every=1, keep_best=False
    )
    click_training(policy, envs, config, snapshot, 0, SilentReporter())
    # Validation runs before iteration 1 and after every iteration.
    assert len(changed) == iterations + 1
    assert not any(changed[: WARMUP_ITERATIONS + 1])
    assert all(changed[WARMUP_ITERATIONS + 1 :])


def test_slates_stay_inside_the_task_items() -> None:
    world = make_synthetic_world(20, 60, 4, seed=0)
    allowed = np.arange(0, 60, 2)
    tasks = [
        dataclasses.replace(task, items=allowed, history=np.intersect1d(task.history, allowed))
        for task in world.tasks
    ]
    envs = [SimulatedUserEnv(world.response, tasks, slate_size=4, rounds=5) for _ in range(4)]
    policy = _policy(60, np.ones(60))
    generator = torch.Generator().manual_seed(0)
    loss, clicks = episode_click_loss(policy, PositionTerms(4), envs, 0.5, generator, seed=1)
    assert loss.item() > 0
    assert clicks >= 0
    for env in envs:
        shown = env.session.items[len(env.task.history) :]
        assert np.isin(shown, allowed).all()


def test_click_training_raises_validation_return() -> None:
    torch.set_num_threads(1)
    config = load_simulation_config(
        None,
        [
            "world.source=synthetic",
            "world.synthetic.n_users=300",
            "world.synthetic.n_items=120",
            "world.synthetic.n_topics=4",
            "episode.rounds=8",
            "episode.slate_size=4",
        ],
    )
    world = build_world(config)
    valid = world.envs(world.tasks["valid"], config.episode, MODEL.max_tokens)
    score = validation_scorer(valid, trials=4)
    counts = np.asarray(world.log.to_csr(world.split.train).sum(axis=0)).ravel()
    policy = _policy(world.log.n_items, counts)
    embeddings = fit_log_embeddings(world.log, world.split.train, 4, seed=0)
    assert policy.ridge is not None
    policy.ridge.initialise(embeddings.vectors, embeddings.prior_mean, 3.0, 10.0)
    start = score(policy)["score"]
    train: EnvFactory = world.envs(world.tasks["train"], config.episode, MODEL.max_tokens)
    rl = RLConfig(
        objective="clicks", iterations=300, batch_size=16, lr=3e-3, eval_every=25, keep_best=False
    )
    history = click_training(policy, [train() for _ in range(16)], rl, score, 0, SilentReporter())
    late = np.mean([record["score"] for record in history[-4:]])
    assert late > start + 0.3
