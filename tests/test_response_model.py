"""Response models: examination curve, Platt scaling, fit and fidelity on MovieLens-100K."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from metarec.data.interactions import InteractionLog
from metarec.data.splits import split_users
from metarec.envs.fit_response import (
    evaluate_fidelity,
    fit_platt,
    fit_response_model,
    format_fidelity,
    last_interactions_mask,
    sampled_auc,
)
from metarec.envs.position_bias import estimate_position_eta, read_open_bandit_random
from metarec.envs.response import ResponseModel, examination_probabilities
from metarec.errors import ConfigError

FIT_EPOCHS = 6


def test_examination_curve() -> None:
    np.testing.assert_allclose(examination_probabilities(4, 1.0), [1.0, 1 / 2, 1 / 3, 1 / 4])
    np.testing.assert_allclose(examination_probabilities(3, 0.0), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="eta must be >= 0"):
        examination_probabilities(3, -1.0)


def test_item_attraction_matches_full_attraction() -> None:
    rng = np.random.default_rng(0)
    model = ResponseModel(
        rng.normal(size=(30, 4)),
        rng.normal(size=30),
        -1.0,
        rng.normal(size=(5, 4)),
        examination_probabilities(10),
    )
    preferences = model.user_factors[:3]
    items = np.array([[0, 5, 7], [29, 1, 2], [3, 3, 4]])
    full = model.attraction(preferences)
    np.testing.assert_allclose(
        model.item_attraction(preferences, items), np.take_along_axis(full, items, 1)
    )
    with pytest.raises(ValueError, match="fewer than slate_size"):
        model.examination(11)


def test_platt_scaling_recovers_parameters() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 2.0, size=20000)
    labels = (rng.random(20000) < 1.0 / (1.0 + np.exp(-(0.5 * logits - 1.0)))).astype(float)
    scale, shift = fit_platt(logits, labels, np.full(20000, 1.0 / 20000))
    assert scale == pytest.approx(0.5, abs=0.05)
    assert shift == pytest.approx(-1.0, abs=0.05)


def test_sampled_auc_counts_own_negatives() -> None:
    positive = np.array([0.9, 0.2])
    negative = np.array([0.1, 0.5, 0.3, 0.2])
    # User 0 beats both of its negatives; user 1 ties one and loses one.
    auc = sampled_auc(positive, negative, np.array([0, 1]), np.array([0, 0, 1, 1]))
    assert auc == pytest.approx((1.0 + 0.25) / 2)


def test_last_interactions_mask(build_log: Callable[..., InteractionLog]) -> None:
    log: InteractionLog = build_log([[0, 1, 2, 3, 4], [5, 6], [7]], n_items=8)
    mask = last_interactions_mask(log, np.array([0, 1, 2]), fraction=0.2)
    np.testing.assert_array_equal(mask, [False] * 4 + [True] + [False, True] + [False])


def test_fit_rejects_bad_options(ml100k_log: InteractionLog) -> None:
    with pytest.raises(ConfigError, match="dim must be at least 1"):
        fit_response_model(ml100k_log, dim=0)
    with pytest.raises(ConfigError, match="one entry per interaction"):
        fit_response_model(ml100k_log, holdout=np.zeros(3, dtype=bool))


def test_fit_rejects_tiny_log(build_log: Callable[..., InteractionLog]) -> None:
    log = build_log([[0]], n_items=4)
    with pytest.raises(ConfigError, match="too few interactions"):
        fit_response_model(log, epochs=1)


@pytest.fixture(scope="module")
def holdout(ml100k_log: InteractionLog) -> np.ndarray:
    return last_interactions_mask(ml100k_log, split_users(ml100k_log).valid, 0.2)


@pytest.fixture(scope="module")
def ml100k_model(ml100k_log: InteractionLog, holdout: np.ndarray) -> ResponseModel:
    torch.set_num_threads(1)
    return fit_response_model(ml100k_log, epochs=FIT_EPOCHS, seed=0, holdout=holdout)


def test_fit_is_calibrated_to_density(
    ml100k_log: InteractionLog, ml100k_model: ResponseModel
) -> None:
    attraction = ml100k_model.attraction(ml100k_model.user_factors)
    density = ml100k_log.n_interactions / (ml100k_log.n_users * ml100k_log.n_items)
    assert attraction.shape == (943, 1682)
    assert attraction.mean() == pytest.approx(density, rel=0.25)
    rows = np.repeat(np.arange(ml100k_log.n_users), ml100k_log.user_lengths())
    logged = attraction[rows, ml100k_log.items].mean()
    assert logged > 5 * attraction.mean()


def test_fidelity_beats_popularity(
    ml100k_log: InteractionLog, ml100k_model: ResponseModel, holdout: np.ndarray
) -> None:
    figures = evaluate_fidelity(ml100k_model, ml100k_log, holdout)
    assert figures["users"] > 80
    assert figures["model_auc"] > figures["popularity_auc"] + 0.02
    assert figures["model_auc"] > 0.8
    assert figures["model_log_loss"] < figures["popularity_log_loss"]
    line = format_fidelity(figures)
    assert f"AUC {figures['model_auc']:.3f}" in line
    assert f"of {int(figures['users'])} users" in line


def test_open_bandit_position_estimate(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "open-bandit-dataset-small"
    if not folder.is_dir():
        pytest.skip(f"dataset folder {folder} not found")
    positions, clicks = read_open_bandit_random(folder)
    estimate = estimate_position_eta(positions, clicks, resamples=200)
    assert estimate.impressions.sum() == 20000
    assert estimate.clicks.sum() == 92
    assert estimate.low <= estimate.eta <= estimate.high
    # Three side-by-side slots show no falling click rate, so eta is near 0.
    assert estimate.high < 0.5


def test_position_estimate_recovers_known_eta() -> None:
    rng = np.random.default_rng(2)
    positions = rng.integers(0, 5, size=200000)
    clicks = rng.random(200000) < 0.2 * examination_probabilities(5, 0.8)[positions]
    estimate = estimate_position_eta(positions, clicks.astype(int), resamples=50)
    assert estimate.eta == pytest.approx(0.8, abs=0.05)
