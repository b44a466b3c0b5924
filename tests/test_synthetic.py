"""Synthetic worlds: determinism, histories drawn from attraction, drift and build time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metarec.envs.synthetic import DriftKind, make_synthetic_world
from metarec.errors import ConfigError


def test_same_seed_same_world() -> None:
    first = make_synthetic_world(30, 200, 8, seed=4)
    second = make_synthetic_world(30, 200, 8, seed=4)
    other = make_synthetic_world(30, 200, 8, seed=5)
    np.testing.assert_array_equal(first.response.item_factors, second.response.item_factors)
    np.testing.assert_array_equal(first.log.items, second.log.items)
    assert first.log.fingerprint() == second.log.fingerprint()
    assert first.log.fingerprint() != other.log.fingerprint()


def test_world_shapes_and_log() -> None:
    world = make_synthetic_world(25, 150, 6, seed=0, history_length=4, log_length=12)
    assert world.response.item_factors.shape == (150, 6)
    assert world.response.user_factors.shape == (25, 6)
    assert world.log.n_users == 25
    assert world.log.n_items == 150
    assert world.log.n_interactions == 25 * 12
    assert len(world.tasks) == 25
    for user, task in enumerate(world.tasks):
        sequence = world.log.user_items(user)
        assert np.unique(sequence).shape[0] == 12
        np.testing.assert_array_equal(task.history, sequence[:4])
        np.testing.assert_array_equal(task.preference, world.response.user_factors[user])
        assert task.kind == "synthetic"
    np.testing.assert_allclose(world.topics.sum(axis=1), 1.0)


def test_histories_follow_attraction() -> None:
    world = make_synthetic_world(200, 500, 10, seed=1, log_length=20)
    attraction = world.response.attraction(world.response.user_factors)
    chosen = np.take_along_axis(attraction, world.log.items.reshape(200, 20), axis=1)
    # Items drawn in proportion to attraction attract far more than the catalog average.
    assert chosen.mean() > 3 * attraction.mean()


def test_topic_vectors_are_sparse() -> None:
    world = make_synthetic_world(10, 400, 20, seed=2)
    share_of_top_three = np.sort(world.topics, axis=1)[:, -3:].sum(axis=1)
    assert np.median(share_of_top_three) > 0.8


@pytest.mark.parametrize(("drift", "span"), [("sudden", 1), ("gradual", 4)])
def test_drift_moves_preference(drift: DriftKind, span: int) -> None:
    world = make_synthetic_world(5, 100, 5, seed=3, drift=drift, drift_step=3, drift_span=4)
    task = world.tasks[0]
    assert task.drift_to is not None
    assert task.drift_span == span
    np.testing.assert_array_equal(task.preference_at(2), task.preference)
    np.testing.assert_allclose(task.preference_at(3 + span - 1), task.drift_to)
    if drift == "gradual":
        halfway = task.preference_at(4)
        np.testing.assert_allclose(halfway, 0.5 * task.preference + 0.5 * task.drift_to)


def test_no_drift_by_default() -> None:
    world = make_synthetic_world(3, 50, 4, seed=0)
    assert all(task.drift_to is None for task in world.tasks)


def test_demo_world_builds_fast() -> None:
    start = time.perf_counter()
    make_synthetic_world(1000, 1000, 20, seed=0)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_items": 0}, "n_items must be at least 1"),
        ({"history_length": 30, "log_length": 20}, "history_length=30"),
        ({"log_length": 100}, "smaller than n_items"),
        ({"drift": "slow"}, "drift must be"),
    ],
)
def test_rejects_invalid_options(options: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"n_users": 5, "n_items": 100, "n_topics": 4, "seed": 0}
    settings.update(options)
    with pytest.raises(ConfigError, match=message):
        make_synthetic_world(**settings)  # type: ignore[arg-type]
