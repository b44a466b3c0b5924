"""Training sessions drawn from training users' histories."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from metarec.meta.sampling import SessionSampler, SupervisedSample, item_neighbors
from metarec.session import CLICK, HISTORY, SKIP


def test_item_neighbors_cosine_order() -> None:
    # Items 0 and 1 always co-occur, item 2 goes with item 0 once, item 3 is alone.
    matrix = sp.csr_matrix(
        np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]], dtype=np.float32)
    )
    neighbors = item_neighbors(matrix, count=1)
    assert neighbors.shape == (4, 1)
    assert neighbors[0, 0] == 1
    assert neighbors[1, 0] == 0
    assert neighbors[2, 0] in (0, 1)


def make_sampler(build_log, neighbors: bool) -> SessionSampler:
    rng = np.random.default_rng(3)
    sequences = [list(rng.choice(60, size=25, replace=False)) for _ in range(30)]
    log = build_log(sequences, n_items=60)
    counts = np.bincount(log.items, minlength=60)
    return SessionSampler(
        log,
        np.arange(log.n_users),
        counts,
        max_shots=5,
        feedback_fraction=1.0,
        rounds=4,
        slate_size=5,
        neighbors=item_neighbors(log.to_csr(), 10) if neighbors else None,
    )


def draw_samples(build_log, seed: int) -> list[tuple[SupervisedSample, np.ndarray]]:
    """Return one sample per user 0..9 with that user's full item sequence."""
    sampler = make_sampler(build_log, neighbors=True)
    rng = np.random.default_rng(seed)
    return [(sampler.sample(user, rng), sampler.log.user_items(user)) for user in range(10)]


def test_sample_targets_exclude_session(build_log) -> None:
    for sample, sequence in draw_samples(build_log, seed=0):
        assert not np.isin(sample.targets, sample.session.items).any()
        assert np.isin(sample.targets, sequence).all()


def test_sample_feedback_matches_history(build_log) -> None:
    for sample, sequence in draw_samples(build_log, seed=1):
        feedback = sample.session.feedback
        items = sample.session.items
        assert (feedback[0] == HISTORY).all()
        assert np.isin(items[feedback == CLICK], sequence).all()
        assert not np.isin(items[feedback == SKIP], sequence).any()
        assert np.unique(items).size == items.size


def test_sample_same_seed_same_session(build_log) -> None:
    sampler = make_sampler(build_log, neighbors=True)
    first = sampler.sample(4, np.random.default_rng(9))
    second = sampler.sample(4, np.random.default_rng(9))
    assert np.array_equal(first.session.items, second.session.items)
    assert np.array_equal(first.targets, second.targets)
