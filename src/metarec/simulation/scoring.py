"""Normalised scores of a policy between the random policy (0) and the oracle (1).

``score = (R - R_random) / (R_oracle - R_random)`` for the mean episode return
``R``, with a percentile bootstrap confidence interval over users. Each
bootstrap sample draws users with replacement and uses the same users for
all three policies (paired resampling), which is valid because the three
results come from the same tasks and seeds (common random numbers).
The oracle is myopic, so a policy that plans ahead can score above 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metarec.errors import ConfigError
from metarec.simulation.runner import EpisodeResults


@dataclass(frozen=True)
class NormalisedScore:
    """A normalised score overall and per step, each with its confidence interval.

    ``per_step[t]`` normalises the mean reward at step ``t`` (0 for users who
    already left); it is NaN where the oracle and random rewards are equal.
    """

    policy: str
    score: float
    low: float
    high: float
    per_step: np.ndarray
    per_step_low: np.ndarray
    per_step_high: np.ndarray
    mean_return: float
    random_return: float
    oracle_return: float
    users: int
    confidence: float


def normalised_score(
    policy: EpisodeResults,
    random: EpisodeResults,
    oracle: EpisodeResults,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> NormalisedScore:
    """Score ``policy`` against ``random`` and ``oracle`` results on the same tasks."""
    _check_paired(policy, random, oracle)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1); got {confidence}")
    if resamples < 1:
        raise ConfigError(f"resamples must be at least 1; got {resamples}")

    users = policy.tasks.shape[0]
    rng = np.random.default_rng(seed)
    # Row r of ``weights`` is the share of each user in bootstrap sample r.
    weights = rng.multinomial(users, np.full(users, 1.0 / users), size=resamples) / users
    totals = [weights @ result.returns for result in (policy, random, oracle)]
    steps = [weights @ result.rewards for result in (policy, random, oracle)]

    tail = (1.0 - confidence) / 2.0
    overall = _ratio(policy.returns.mean(), random.returns.mean(), oracle.returns.mean())
    per_step = _ratio(
        policy.rewards.mean(axis=0), random.rewards.mean(axis=0), oracle.rewards.mean(axis=0)
    )
    boot_overall = _ratio(*totals)
    boot_steps = _ratio(*steps)
    low, high = np.nanquantile(boot_overall, [tail, 1.0 - tail])
    with np.errstate(all="ignore"):
        step_low, step_high = _column_quantiles(boot_steps, tail)
    return NormalisedScore(
        policy=policy.policy,
        score=float(overall),
        low=float(low),
        high=float(high),
        per_step=np.asarray(per_step),
        per_step_low=step_low,
        per_step_high=step_high,
        mean_return=policy.mean_return,
        random_return=random.mean_return,
        oracle_return=oracle.mean_return,
        users=users,
        confidence=confidence,
    )


@dataclass(frozen=True)
class ScoreDifference:
    """Normalised score of one policy minus another's, with a paired bootstrap interval."""

    policy: str
    other: str
    difference: float
    low: float
    high: float


def score_difference(
    policy: EpisodeResults,
    other: EpisodeResults,
    random: EpisodeResults,
    oracle: EpisodeResults,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ScoreDifference:
    """Return ``score(policy) - score(other)`` with an interval from the same resampled users.

    Both policies met the same users with the same random draws, so each
    bootstrap sample takes the same users for both. An interval above 0 at
    both ends means ``policy`` is ahead on these users.
    """
    _check_paired(policy, other, random, oracle)
    users = policy.tasks.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(users, np.full(users, 1.0 / users), size=resamples) / users
    span = weights @ oracle.returns - weights @ random.returns
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = (weights @ policy.returns - weights @ other.returns) / span
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(samples, [tail, 1.0 - tail])
    gap = oracle.returns.mean() - random.returns.mean()
    difference = (policy.returns.mean() - other.returns.mean()) / gap if gap else float("nan")
    return ScoreDifference(policy.policy, other.policy, float(difference), float(low), float(high))


def _ratio(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    span = np.asarray(high - low, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span != 0, (value - low) / np.where(span != 0, span, 1.0), np.nan)


def _column_quantiles(samples: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
    low = np.full(samples.shape[1], np.nan)
    high = np.full(samples.shape[1], np.nan)
    for column in range(samples.shape[1]):
        finite = samples[:, column][np.isfinite(samples[:, column])]
        if finite.size:
            low[column], high[column] = np.quantile(finite, [tail, 1.0 - tail])
    return low, high


def _check_paired(*results: EpisodeResults) -> None:
    first = results[0]
    for other in results[1:]:
        if not np.array_equal(other.tasks, first.tasks) or other.seed != first.seed:
            raise ConfigError(
                f"results of {first.policy} and {other.policy} come from different tasks or "
                "seeds; run every policy with run_episodes on the same tasks and seed"
            )
        if other.rewards.shape != first.rewards.shape:
            raise ConfigError(
                f"results of {first.policy} and {other.policy} have different round counts"
            )


def format_score(score: NormalisedScore) -> str:
    """Return one line: the score, its interval and the three mean returns."""
    percent = round(100 * score.confidence)
    return (
        f"{score.policy}: normalised score {score.score:.3f} "
        f"({percent}% CI {score.low:.3f} to {score.high:.3f}, {score.users} users); "
        f"return {score.mean_return:.3f}, random {score.random_return:.3f}, "
        f"oracle {score.oracle_return:.3f}"
    )
