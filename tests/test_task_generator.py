"""Building user, segment, domain and virtual tasks from a log and a response model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from metarec.data.interactions import InteractionLog
from metarec.data.items import genre_slices, read_item_genres
from metarec.data.splits import split_users
from metarec.envs.fit_response import fit_response_model
from metarec.envs.response import ResponseModel
from metarec.tasks.density import GaussianMixtureGenerator
from metarec.tasks.generator import (
    domain_tasks,
    draw_shots,
    sample_history,
    segment_tasks,
    user_tasks,
    virtual_tasks,
)

DIM = 4


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Run scikit-learn's OpenMP and BLAS code on one thread, so tests stay fast on busy CPUs."""
    with threadpool_limits(limits=1):
        yield


def _model(n_users: int, n_items: int, seed: int = 0) -> ResponseModel:
    rng = np.random.default_rng(seed)
    return ResponseModel(
        item_factors=rng.normal(size=(n_items, DIM)),
        item_bias=rng.normal(scale=0.5, size=n_items),
        offset=-1.0,
        user_factors=rng.normal(size=(n_users, DIM)),
        position_bias=np.ones(5),
    )


@pytest.fixture(scope="module")
def small_log(build_log: Callable[..., InteractionLog]) -> InteractionLog:
    return build_log([[3, 1, 4, 0, 5, 9, 2], [6, 5], [8, 7, 0, 1, 2, 3]], n_items=10)


# draw_shots and sample_history


def test_draw_shots_range_is_inclusive() -> None:
    rng = np.random.default_rng(0)
    drawn = {draw_shots((2, 4), rng) for _ in range(200)}
    assert drawn == {2, 3, 4}
    assert draw_shots(7, rng) == 7


@pytest.mark.parametrize("shots", [-1, (3, 2), (-1, 2)])
def test_draw_shots_rejects_invalid(shots: int | tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="shots"):
        draw_shots(shots, np.random.default_rng(0))


def test_sample_history_distinct_items() -> None:
    model = _model(1, 30)
    history = sample_history(model, model.user_factors[0], 12, np.random.default_rng(1))
    assert history.shape == (12,)
    assert np.unique(history).shape[0] == 12
    assert history.dtype == np.int64


def test_sample_history_within_items() -> None:
    model = _model(1, 30)
    allowed = np.array([2, 5, 11, 17, 23])
    history = sample_history(model, model.user_factors[0], 5, np.random.default_rng(1), allowed)
    assert sorted(history.tolist()) == allowed.tolist()


def test_sample_history_first_draw_follows_attraction() -> None:
    model = _model(1, 6, seed=3)
    preference = model.user_factors[0]
    rng = np.random.default_rng(2)
    draws = 20000
    firsts = np.array([sample_history(model, preference, 2, rng)[0] for _ in range(draws)])
    frequency = np.bincount(firsts, minlength=6) / draws
    attraction = model.attraction(preference)
    expected = attraction / attraction.sum()
    # Each frequency has a standard error below 0.004 at 20000 draws.
    np.testing.assert_allclose(frequency, expected, atol=0.015)


def test_sample_history_too_long() -> None:
    model = _model(1, 5)
    with pytest.raises(ValueError, match="cannot draw a history of 6 distinct items from 5"):
        sample_history(model, model.user_factors[0], 6, np.random.default_rng(0))


# user_tasks


def test_user_tasks_first_items(small_log: InteractionLog) -> None:
    model = _model(3, 10)
    tasks = user_tasks(small_log, model, np.array([0, 2]), 3, np.random.default_rng(0))
    assert [task.task_id for task in tasks] == ["user-u0", "user-u2"]
    assert tasks[0].history.tolist() == [3, 1, 4]
    assert tasks[1].history.tolist() == [8, 7, 0]
    assert all(task.kind == "user" for task in tasks)
    assert tasks[1].user == 2
    np.testing.assert_array_equal(tasks[1].preference, model.user_factors[2])


def test_user_tasks_short_log(small_log: InteractionLog) -> None:
    tasks = user_tasks(small_log, _model(3, 10), np.array([1]), 5, np.random.default_rng(0))
    assert tasks[0].history.tolist() == [6, 5]


def test_user_tasks_shot_range(small_log: InteractionLog) -> None:
    rng = np.random.default_rng(4)
    users = np.zeros(100, dtype=np.int64)
    tasks = user_tasks(small_log, _model(3, 10), users, (1, 6), rng)
    lengths = {task.history.shape[0] for task in tasks}
    assert lengths == {1, 2, 3, 4, 5, 6}
    for task in tasks:
        assert task.history.tolist() == [3, 1, 4, 0, 5, 9][: task.history.shape[0]]


def test_user_tasks_reject_other_model(small_log: InteractionLog) -> None:
    with pytest.raises(ValueError, match="response model has 4 users and 10 items but the log"):
        user_tasks(small_log, _model(4, 10), np.array([0]), 2, np.random.default_rng(0))


# segment_tasks


def _clustered_model(per_cluster: int, seed: int = 0) -> tuple[ResponseModel, np.ndarray]:
    """Return a model whose users form three tight clusters, and each user's cluster."""
    rng = np.random.default_rng(seed)
    centers = np.array([[6.0, 0, 0, 0], [0, 6.0, 0, 0], [0, 0, 0, -6.0]])
    truth = np.repeat(np.arange(3), per_cluster)
    users = centers[truth] + rng.normal(scale=0.3, size=(truth.shape[0], DIM))
    base = _model(truth.shape[0], 40, seed)
    model = ResponseModel(base.item_factors, base.item_bias, base.offset, users, base.position_bias)
    return model, truth


def test_segments_cover_users() -> None:
    model, truth = _clustered_model(20)
    users = np.arange(truth.shape[0])
    tasks, labels = segment_tasks(model, users, n_segments=3, seed=0, history_length=6)
    assert labels.shape == users.shape
    assert set(labels.tolist()) == {0, 1, 2}
    assert adjusted_rand_score(truth, labels) == 1.0
    assert [task.task_id for task in tasks] == ["segment-0", "segment-1", "segment-2"]


def test_segment_preference_is_centroid() -> None:
    model, truth = _clustered_model(20)
    users = np.arange(5, truth.shape[0])
    tasks, labels = segment_tasks(model, users, n_segments=3, seed=0)
    for segment, task in enumerate(tasks):
        members = model.user_factors[users[labels == segment]]
        np.testing.assert_allclose(task.preference, members.mean(axis=0), atol=1e-8)
        assert task.kind == "segment"
        assert task.user is None


def test_segment_histories_follow_centroid() -> None:
    model, truth = _clustered_model(20)
    tasks, _ = segment_tasks(model, np.arange(truth.shape[0]), 3, seed=1, history_length=8)
    for task in tasks:
        assert task.history.shape == (8,)
        assert np.unique(task.history).shape[0] == 8
        attraction = model.attraction(task.preference)
        # Items drawn in proportion to attraction are on average more attractive.
        assert attraction[task.history].mean() > attraction.mean()


def test_segment_count_must_fit_users() -> None:
    model, _ = _clustered_model(2)
    with pytest.raises(ValueError, match="n_segments must be between 1 and the number of users"):
        segment_tasks(model, np.arange(6), n_segments=7, seed=0)


# domain_tasks


GENRES = {
    "i00": ("Action",),
    "i01": ("Action", "Drama"),
    "i02": ("Drama",),
    "i03": ("Action",),
    "i04": ("Drama",),
    "i05": ("Comedy",),
    "i06": ("Action",),
    "i07": ("Drama",),
    "i08": ("Action", "Drama"),
}


def test_domain_tasks_stay_in_slice(small_log: InteractionLog) -> None:
    model = _model(3, 10)
    tasks = domain_tasks(
        small_log,
        model,
        np.arange(3),
        GENRES,
        3,
        np.random.default_rng(0),
        min_slice_items=2,
        min_user_items=2,
    )
    by_id = {task.task_id: task for task in tasks}
    assert sorted(by_id) == [
        "domain-Action-u0",
        "domain-Action-u2",
        "domain-Drama-u0",
        "domain-Drama-u2",
    ]
    action = by_id["domain-Action-u0"]
    assert action.items is not None
    assert action.items.tolist() == [0, 1, 3, 6, 8]
    assert action.history.tolist() == [3, 1, 0]
    assert by_id["domain-Drama-u2"].history.tolist() == [8, 7, 1]
    for task in tasks:
        assert task.items is not None
        assert np.isin(task.history, task.items).all()
        assert task.kind == "domain"


def test_domain_tasks_skip_small_slices(small_log: InteractionLog) -> None:
    tasks = domain_tasks(
        small_log,
        _model(3, 10),
        np.arange(3),
        GENRES,
        2,
        np.random.default_rng(0),
        min_slice_items=5,
        min_user_items=1,
    )
    assert {task.task_id.split("-")[1] for task in tasks} == {"Action", "Drama"}


def test_domain_tasks_genre_choice(small_log: InteractionLog) -> None:
    rng = np.random.default_rng(0)
    model = _model(3, 10)
    tasks = domain_tasks(
        small_log,
        model,
        np.arange(3),
        GENRES,
        2,
        rng,
        genres=["Drama"],
        min_slice_items=1,
        min_user_items=1,
    )
    assert {task.task_id for task in tasks} == {"domain-Drama-u0", "domain-Drama-u2"}
    with pytest.raises(ValueError, match=r"unknown genres \['Horror'\]"):
        domain_tasks(small_log, model, np.arange(3), GENRES, 2, rng, genres=["Horror"])


def test_domain_tasks_on_ml100k(ml100k_log: InteractionLog, ml100k_raw_dir: Path) -> None:
    item_genres = read_item_genres(ml100k_raw_dir)
    model = _model(ml100k_log.n_users, ml100k_log.n_items)
    users = np.arange(0, ml100k_log.n_users, 10)
    rng = np.random.default_rng(0)
    tasks = domain_tasks(ml100k_log, model, users, item_genres, 5, rng, genres=["Horror"])
    horror = set(genre_slices(ml100k_log, item_genres)["Horror"].tolist())
    assert len(tasks) > 10
    for task in tasks:
        assert task.user is not None
        logged = ml100k_log.user_items(task.user)
        in_slice = [item for item in logged.tolist() if item in horror]
        assert task.history.tolist() == in_slice[:5]
        assert task.items is not None
        assert set(task.items.tolist()) == horror


# virtual_tasks


def test_virtual_tasks_from_mixture() -> None:
    model = _model(200, 30)
    generator = GaussianMixtureGenerator(max_components=3).fit(model.user_factors)
    tasks = virtual_tasks(generator, model, 25, (2, 4), np.random.default_rng(0))
    assert len(tasks) == 25
    assert {task.kind for task in tasks} == {"virtual"}
    assert len({task.task_id for task in tasks}) == 25
    for task in tasks:
        assert task.preference.shape == (DIM,)
        assert 2 <= task.history.shape[0] <= 4
        assert np.unique(task.history).shape[0] == task.history.shape[0]
    again = virtual_tasks(generator, model, 25, (2, 4), np.random.default_rng(0))
    np.testing.assert_array_equal(tasks[7].preference, again[7].preference)
    np.testing.assert_array_equal(tasks[7].history, again[7].history)


def test_virtual_tasks_reject_other_dimension() -> None:
    model = _model(50, 30)
    generator = GaussianMixtureGenerator(max_components=1).fit(model.user_factors[:, :3])
    with pytest.raises(ValueError, match=r"sampled shape \(5, 3\), but the response model needs"):
        virtual_tasks(generator, model, 5, 2, np.random.default_rng(0))


# All kinds on a response model fit to ML-100K


def test_tasks_from_fitted_ml100k_model(ml100k_log: InteractionLog, ml100k_raw_dir: Path) -> None:
    model = fit_response_model(ml100k_log, dim=8, epochs=2, seed=0)
    train = split_users(ml100k_log).train
    rng = np.random.default_rng(0)
    users = user_tasks(ml100k_log, model, train, (1, 20), rng)
    assert len(users) == train.shape[0]
    assert all(1 <= task.history.shape[0] <= 20 for task in users)
    segments, labels = segment_tasks(model, train, n_segments=8, seed=0)
    assert np.bincount(labels, minlength=8).min() > 0
    assert all(task.preference.shape == (8,) for task in segments)
    item_genres = read_item_genres(ml100k_raw_dir)
    domains = domain_tasks(ml100k_log, model, train[:50], item_genres, 5, rng)
    assert {task.task_id.split("-")[1] for task in domains} >= {"Drama", "Comedy", "Action"}
    generator = GaussianMixtureGenerator(max_components=3).fit(model.user_factors[train])
    virtual = virtual_tasks(generator, model, 100, 5, rng)
    assert all(task.history.shape == (5,) for task in virtual)
