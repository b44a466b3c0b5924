"""Two-sample tests that measure how close generated users are to real held-out users.

- ``mmd_test``: squared maximum mean discrepancy with an RBF kernel (Gretton et al.,
  2012, "A Kernel Two-Sample Test"), unbiased estimator, bandwidth by the median
  heuristic, and a permutation p-value.
- ``classifier_two_sample_test``: a classifier learns to tell the two samples apart
  (Lopez-Paz and Oquab, 2017, "Revisiting Classifier Two-Sample Tests"). Its accuracy on
  held-out folds is 0.5 when the samples are indistinguishable and 1.0 when they are
  perfectly separable.

``fidelity_table`` fits each generator on training users' vectors, compares its samples
with held-out users' vectors, and adds the training users themselves as the floor row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist, pdist
from scipy.stats import binomtest
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from metarec.tasks.generative import PreferenceGenerator, check_vectors

logger = logging.getLogger(__name__)

REAL_TRAIN = "real training users"


@dataclass(frozen=True)
class MMDResult:
    """Unbiased squared MMD, its permutation p-value and the RBF bandwidth used."""

    mmd2: float
    p_value: float
    bandwidth: float


@dataclass(frozen=True)
class C2STResult:
    """Held-out accuracy of a real-versus-other classifier and its binomial p-value.

    ``n_per_sample`` vectors of each sample were used, so chance accuracy is 0.5.
    """

    accuracy: float
    p_value: float
    n_per_sample: int


@dataclass(frozen=True)
class FidelityRow:
    """The two-sample statistics of one source of vectors against the reference users."""

    source: str
    n_samples: int
    n_reference: int
    mmd: MMDResult
    c2st: C2STResult


def median_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """Return the median pairwise Euclidean distance of the pooled sample."""
    distances = pdist(np.vstack([x, y]))
    positive = distances[distances > 0]
    if positive.shape[0] == 0:
        raise ValueError("all vectors are identical, so the median-heuristic bandwidth is 0")
    return float(np.median(positive))


def mmd_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_permutations: int = 500,
    seed: int = 0,
    bandwidth: float | None = None,
) -> MMDResult:
    """Test whether ``x`` and ``y`` come from one distribution with the RBF-kernel MMD.

    The kernel is ``exp(-||a - b||^2 / (2 * bandwidth^2))``, and ``bandwidth`` defaults
    to the median heuristic. The p-value is ``(1 + #{permuted >= observed}) / (1 + P)``
    over ``P`` random relabellings of the pooled sample.
    """
    x, y = check_vectors(x), check_vectors(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"samples have dimensions {x.shape[1]} and {y.shape[1]}")
    width = median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    if width <= 0:
        raise ValueError(f"bandwidth must be > 0, got {width}")
    pooled = np.vstack([x, y])
    kernel = np.exp(-(cdist(pooled, pooled, "sqeuclidean") / (2.0 * width**2)))
    m = x.shape[0]
    labels = np.zeros(pooled.shape[0], dtype=bool)
    labels[:m] = True
    observed = float(_unbiased_mmd2(kernel, labels[:, None])[0])
    rng = np.random.default_rng(seed)
    permuted = np.stack([rng.permutation(labels) for _ in range(n_permutations)], axis=1)
    null = _unbiased_mmd2(kernel, permuted)
    p_value = (1.0 + float(np.sum(null >= observed))) / (1.0 + n_permutations)
    return MMDResult(mmd2=observed, p_value=p_value, bandwidth=width)


def _unbiased_mmd2(kernel: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """Return the unbiased MMD^2 for each column of the boolean ``(N, P)`` labelling.

    The kernel diagonal is 1 (RBF), so it is removed by subtracting the sample sizes.
    """
    a = in_x.astype(np.float64)
    b = 1.0 - a
    m = a.sum(axis=0)
    n = b.sum(axis=0)
    kernel_a = kernel @ a
    kernel_b = kernel @ b
    within_x = (np.einsum("ip,ip->p", a, kernel_a) - m) / (m * (m - 1))
    within_y = (np.einsum("ip,ip->p", b, kernel_b) - n) / (n * (n - 1))
    between = np.einsum("ip,ip->p", a, kernel_b) / (m * n)
    return np.asarray(within_x + within_y - 2.0 * between)


def default_classifier(seed: int) -> ClassifierMixin:
    """Return the two-sample classifier: gradient-boosted trees with scikit-learn defaults.

    On truncated-SVD user vectors of ML-100K (32 dimensions, 282 held-out users against
    as many samples), boosted trees separated an undertrained GAN from real users with
    0.89 accuracy, where an MLP with early stopping reached 0.58 and logistic regression
    0.58. All three stayed near 0.5 on training users against held-out users.
    """
    return HistGradientBoostingClassifier(random_state=seed)


def classifier_two_sample_test(
    real: np.ndarray,
    other: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    classifier: Callable[[int], ClassifierMixin] = default_classifier,
) -> C2STResult:
    """Train a classifier to tell ``real`` from ``other`` and measure it on held-out folds.

    The larger sample is subsampled to the size of the smaller, so that 0.5 is chance.
    Every vector is predicted once, by the model of the fold that left it out, and the
    p-value is a one-sided binomial test of those predictions against 0.5.
    """
    real, other = check_vectors(real, min_rows=folds), check_vectors(other, min_rows=folds)
    if real.shape[1] != other.shape[1]:
        raise ValueError(f"samples have dimensions {real.shape[1]} and {other.shape[1]}")
    rng = np.random.default_rng(seed)
    size = min(real.shape[0], other.shape[0])
    features = np.vstack([_subsample(real, size, rng), _subsample(other, size, rng)])
    targets = np.repeat([1, 0], size)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(classifier(seed), features, targets, cv=splitter)
    correct = int(np.sum(predicted == targets))
    test = binomtest(correct, targets.shape[0], 0.5, alternative="greater")
    return C2STResult(
        accuracy=correct / targets.shape[0], p_value=float(test.pvalue), n_per_sample=size
    )


def _subsample(vectors: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if vectors.shape[0] == size:
        return vectors
    return vectors[rng.choice(vectors.shape[0], size=size, replace=False)]


def compare_samples(
    source: str, sample: np.ndarray, reference: np.ndarray, *, seed: int = 0
) -> FidelityRow:
    """Run both two-sample tests of ``sample`` against the ``reference`` vectors."""
    return FidelityRow(
        source=source,
        n_samples=int(sample.shape[0]),
        n_reference=int(reference.shape[0]),
        mmd=mmd_test(sample, reference, seed=seed),
        c2st=classifier_two_sample_test(reference, sample, seed=seed),
    )


def fidelity_table(
    generators: Mapping[str, PreferenceGenerator],
    train: np.ndarray,
    reference: np.ndarray,
    *,
    seed: int = 0,
) -> list[FidelityRow]:
    """Fit each generator on ``train``, sample as many vectors, and compare with ``reference``.

    The first row compares the training vectors themselves with ``reference``: a
    generator cannot be expected to come closer to held-out users than that floor.
    """
    train, reference = check_vectors(train), check_vectors(reference)
    rows = [compare_samples(REAL_TRAIN, train, reference, seed=seed)]
    for name, generator in generators.items():
        logger.info("Fitting generator %s on %d vectors", name, train.shape[0])
        sample = generator.fit(train).sample(train.shape[0], seed=seed)
        rows.append(compare_samples(name, sample, reference, seed=seed))
    return rows


def format_fidelity_table(rows: list[FidelityRow]) -> str:
    """Format rows as a Markdown table."""
    lines = [
        "| source | n | n reference | MMD^2 | MMD p-value | C2ST accuracy | C2ST p-value |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.source} | {row.n_samples} | {row.n_reference} | {row.mmd.mmd2:.4f} "
            f"| {row.mmd.p_value:.3f} | {row.c2st.accuracy:.3f} | {row.c2st.p_value:.3g} |"
        )
    return "\n".join(lines)
