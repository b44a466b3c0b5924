"""Generative models of user vectors and the two-sample tests that judge them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from metarec.data.splits import UserSplit
from metarec.tasks.density import GaussianMixtureGenerator
from metarec.tasks.fidelity import (
    REAL_TRAIN,
    classifier_two_sample_test,
    fidelity_table,
    format_fidelity_table,
    median_bandwidth,
    mmd_test,
)
from metarec.tasks.gan import PreferenceGAN
from metarec.tasks.generative import PreferenceGenerator
from metarec.tasks.report import WorldVectors, format_report, report_world

torch.set_num_threads(1)

DIM = 6


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Run scikit-learn's OpenMP and BLAS code on one thread, so tests stay fast on busy CPUs."""
    with threadpool_limits(limits=1):
        yield


def _two_moons_users(n: int, seed: int) -> np.ndarray:
    """Return vectors from a fixed non-Gaussian law: two curved, unequal clusters in 6-D."""
    rng = np.random.default_rng(seed)
    upper = rng.random(n) < 0.6
    angle = rng.uniform(0.0, np.pi, n)
    x = np.where(upper, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    rest = rng.normal(scale=0.2, size=(n, DIM - 2)) + np.array([1.0, -0.5, 0.0, 0.3])
    return np.column_stack([2.0 * x, 2.0 * y, rest]) + rng.normal(scale=0.2, size=(n, DIM))


# MMD


def test_mmd_of_one_distribution_near_zero() -> None:
    rng = np.random.default_rng(0)
    result = mmd_test(rng.normal(size=(300, DIM)), rng.normal(size=(250, DIM)), seed=1)
    assert abs(result.mmd2) < 0.005, f"MMD^2 {result.mmd2:.5f} of one distribution"
    assert result.p_value > 0.05, f"p-value {result.p_value:.3f} of one distribution"


def test_mmd_of_shifted_distributions() -> None:
    rng = np.random.default_rng(0)
    same = mmd_test(rng.normal(size=(300, DIM)), rng.normal(size=(250, DIM)), seed=1)
    shifted = mmd_test(rng.normal(size=(300, DIM)), rng.normal(0.5, size=(250, DIM)), seed=1)
    assert shifted.mmd2 > 0.05, f"MMD^2 {shifted.mmd2:.4f} of a 0.5 shift in every dimension"
    assert shifted.mmd2 > 20 * abs(same.mmd2)
    assert shifted.p_value < 0.01


def test_mmd_detects_scale_change() -> None:
    rng = np.random.default_rng(3)
    result = mmd_test(rng.normal(size=(300, DIM)), rng.normal(scale=1.5, size=(300, DIM)))
    assert result.p_value < 0.01, f"p-value {result.p_value:.3f} for a 1.5x scale change"


def test_mmd_unbiased_estimate_matches_direct_formula() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20, 3)), rng.normal(0.3, size=(15, 3))
    width = 1.7
    result = mmd_test(x, y, bandwidth=width, n_permutations=10)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        return np.exp(-squared / (2 * width**2))

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    expected = (
        (kxx.sum() - np.trace(kxx)) / (20 * 19)
        + (kyy.sum() - np.trace(kyy)) / (15 * 14)
        - 2 * kxy.mean()
    )
    assert result.mmd2 == pytest.approx(expected, rel=1e-10)
    assert result.bandwidth == width


def test_median_bandwidth() -> None:
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    y = np.array([[6.0, 8.0]])
    assert median_bandwidth(x, y) == 5.0


def test_mmd_rejects_dimension_mismatch() -> None:
    with pytest.raises(ValueError, match="samples have dimensions 2 and 3"):
        mmd_test(np.zeros((4, 2)) + np.arange(4)[:, None], np.ones((4, 3)))


# Classifier two-sample test


def test_c2st_of_one_distribution_near_half() -> None:
    rng = np.random.default_rng(0)
    result = classifier_two_sample_test(rng.normal(size=(400, DIM)), rng.normal(size=(600, DIM)))
    assert result.n_per_sample == 400
    assert abs(result.accuracy - 0.5) < 0.05, f"accuracy {result.accuracy:.3f}"


def test_c2st_separates_shifted_distributions() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, DIM))
    result = classifier_two_sample_test(real, rng.normal(1.0, size=(400, DIM)))
    assert result.accuracy > 0.85, f"accuracy {result.accuracy:.3f} for a shift of 1"
    assert result.p_value < 1e-6


# Gaussian mixture


def test_mixture_bic_finds_components() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]])
    vectors = centers[rng.integers(3, size=600)] + rng.normal(size=(600, 2))
    mixture = GaussianMixtureGenerator(max_components=6).fit(vectors)
    assert mixture.n_components_ == 3, f"BIC per component count: {mixture.bic_}"
    assert sorted(mixture.bic_) == [1, 2, 3, 4, 5, 6]


def test_mixture_samples_match_moments() -> None:
    rng = np.random.default_rng(1)
    covariance = np.array([[2.0, 0.8], [0.8, 1.0]])
    vectors = rng.multivariate_normal([1.0, -2.0], covariance, size=2000)
    mixture = GaussianMixtureGenerator(max_components=1).fit(vectors)
    sample = mixture.sample(20000, seed=3)
    np.testing.assert_allclose(sample.mean(axis=0), [1.0, -2.0], atol=0.1)
    np.testing.assert_allclose(np.cov(sample.T), covariance, atol=0.15)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_mixture_sampling_is_seeded(covariance_type: str) -> None:
    vectors = _two_moons_users(300, seed=0)
    mixture = GaussianMixtureGenerator(3, covariance_type=covariance_type)  # type: ignore[arg-type]
    mixture.fit(vectors)
    first, again = mixture.sample(50, seed=7), mixture.sample(50, seed=7)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (50, DIM)
    assert not np.allclose(first, mixture.sample(50, seed=8))


def test_mixture_requires_fit() -> None:
    with pytest.raises(ValueError, match=r"not fitted. Call fit\(vectors\) first"):
        GaussianMixtureGenerator().sample(3, seed=0)


# GAN


def test_gan_closer_to_real_than_untrained() -> None:
    train, held_out = _two_moons_users(600, seed=1), _two_moons_users(400, seed=2)
    trained = PreferenceGAN(steps=300, hidden=64, learning_rate=1e-3).fit(train)
    untrained = PreferenceGAN(steps=0, hidden=64, learning_rate=1e-3).fit(train)
    trained_c2st = classifier_two_sample_test(held_out, trained.sample(400, seed=5))
    untrained_c2st = classifier_two_sample_test(held_out, untrained.sample(400, seed=5))
    gap_trained = abs(trained_c2st.accuracy - 0.5)
    gap_untrained = abs(untrained_c2st.accuracy - 0.5)
    message = (
        f"C2ST accuracy {trained_c2st.accuracy:.3f} after training, "
        f"{untrained_c2st.accuracy:.3f} untrained"
    )
    assert untrained_c2st.accuracy > 0.9, message
    assert trained_c2st.accuracy < 0.8, message
    assert gap_trained < gap_untrained - 0.2, message
    trained_mmd = mmd_test(trained.sample(400, seed=5), held_out).mmd2
    untrained_mmd = mmd_test(untrained.sample(400, seed=5), held_out).mmd2
    assert trained_mmd < untrained_mmd / 5, f"MMD^2 {trained_mmd:.4f} vs {untrained_mmd:.4f}"


def test_gan_is_deterministic() -> None:
    vectors = _two_moons_users(200, seed=0)
    first = PreferenceGAN(steps=20, hidden=32, seed=3).fit(vectors)
    second = PreferenceGAN(steps=20, hidden=32, seed=3).fit(vectors)
    np.testing.assert_array_equal(first.sample(10, seed=1), second.sample(10, seed=1))
    assert not np.allclose(first.sample(10, seed=1), first.sample(10, seed=2))
    other = PreferenceGAN(steps=20, hidden=32, seed=4).fit(vectors)
    assert not np.allclose(first.sample(10, seed=1), other.sample(10, seed=1))


def test_gan_training_curve() -> None:
    gan = PreferenceGAN(steps=60, hidden=32, log_every=25).fit(_two_moons_users(200, seed=0))
    assert gan.curve_.step == [25, 50, 60]
    assert len(gan.curve_.wasserstein) == 3
    assert len(gan.curve_.generator_loss) == 3
    assert all(penalty >= 0 for penalty in gan.curve_.gradient_penalty)


def test_gan_does_not_touch_global_seed() -> None:
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    PreferenceGAN(steps=5, hidden=16).fit(_two_moons_users(100, seed=0))
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": -1}, "steps must be >= 0"),
        ({"hidden": 0}, "hidden must be >= 1"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
    ],
)
def test_gan_rejects_invalid_options(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PreferenceGAN(**options)  # type: ignore[arg-type]


def test_generators_reject_bad_vectors() -> None:
    for generator in (PreferenceGAN(steps=1), GaussianMixtureGenerator()):
        assert isinstance(generator, PreferenceGenerator)
        with pytest.raises(ValueError, match="NaN or infinite"):
            generator.fit(np.array([[0.0, np.nan], [1.0, 2.0]]))
        with pytest.raises(ValueError, match=r"expected an \(n_users, dim\) array"):
            generator.fit(np.zeros(5))


# Fidelity table


def test_fidelity_table_rows() -> None:
    train, reference = _two_moons_users(300, seed=1), _two_moons_users(150, seed=2)
    rows = fidelity_table({"GMM": GaussianMixtureGenerator(max_components=4)}, train, reference)
    assert [row.source for row in rows] == [REAL_TRAIN, "GMM"]
    floor, mixture = rows
    assert floor.n_samples == 300
    assert mixture.n_samples == 300
    assert mixture.n_reference == 150
    assert abs(floor.c2st.accuracy - 0.5) < 0.08, f"floor accuracy {floor.c2st.accuracy:.3f}"
    assert floor.mmd.p_value > 0.05
    table = format_fidelity_table(rows)
    assert table.splitlines()[2].startswith(f"| {REAL_TRAIN} | 300 | 150 |")
    assert len(table.splitlines()) == 4


def test_report_world_format() -> None:
    vectors = _two_moons_users(250, seed=4)
    split = UserSplit(train=np.arange(150), valid=np.arange(150, 200), test=np.arange(200, 250))
    report = report_world(WorldVectors("moons", vectors, split), gan_steps=30, seed=0)
    assert [row.source for row in report.rows] == [REAL_TRAIN, "GMM (BIC)", "WGAN-GP"]
    assert all(row.n_reference == 100 for row in report.rows)
    assert report.gan_curve.step == [25, 30]
    text = format_report(report)
    assert text.startswith("## moons, dim 6\n")
    assert f"GMM components chosen by BIC: {report.mixture_components}" in text
    assert "at step 30" in text
