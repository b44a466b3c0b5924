"""Normalised scores between random and oracle, with paired bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import SyntheticWorld, make_synthetic_world
from metarec.errors import ConfigError
from metarec.simulation.policies import OraclePolicy, RandomPolicy
from metarec.simulation.runner import EpisodeResults, run_episodes
from metarec.simulation.scoring import format_score, normalised_score, score_difference


class MixedPolicy:
    """Plays the oracle for ``oracle_steps`` steps, then random slates."""

    name = "mixed"

    def __init__(self, oracle_steps: int) -> None:
        self.oracle_steps = oracle_steps

    def act(self, envs: Sequence[SimulatedUserEnv]) -> np.ndarray:
        if envs[0].step_index < self.oracle_steps:
            return OraclePolicy().act(envs)
        return RandomPolicy(0).act(envs)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return make_synthetic_world(120, 400, 10, seed=3)


def play(world: SyntheticWorld, policy: object, seed: int = 0) -> EpisodeResults:
    def factory() -> SimulatedUserEnv:
        return SimulatedUserEnv(world.response, world.tasks, slate_size=5, rounds=8, patience=None)

    return run_episodes(policy, factory, seed=seed)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def baselines(world: SyntheticWorld) -> tuple[EpisodeResults, EpisodeResults]:
    return play(world, RandomPolicy(0)), play(world, OraclePolicy())


def test_oracle_scores_one_random_zero(baselines: tuple[EpisodeResults, EpisodeResults]) -> None:
    random, oracle = baselines
    assert normalised_score(oracle, random, oracle).score == pytest.approx(1.0)
    assert normalised_score(random, random, oracle).score == pytest.approx(0.0)
    top = normalised_score(oracle, random, oracle)
    np.testing.assert_allclose(top.per_step, 1.0)
    assert top.low == pytest.approx(1.0)


def test_mixed_policy_scores_between(
    world: SyntheticWorld, baselines: tuple[EpisodeResults, EpisodeResults]
) -> None:
    random, oracle = baselines
    mixed = play(world, MixedPolicy(oracle_steps=4))
    score = normalised_score(mixed, random, oracle, resamples=500)
    assert 0.2 < score.score < 0.9
    assert score.low < score.score < score.high
    assert score.high - score.low < 0.4
    # Steps played by the oracle score near 1; the random steps near 0.
    assert score.per_step[:4].min() > 0.9
    assert np.abs(score.per_step[4:]).max() < 0.3
    expected = (mixed.mean_return - random.mean_return) / (oracle.mean_return - random.mean_return)
    assert score.score == pytest.approx(expected)
    assert "normalised score" in format_score(score)


def test_same_seed_same_interval(
    world: SyntheticWorld, baselines: tuple[EpisodeResults, EpisodeResults]
) -> None:
    random, oracle = baselines
    mixed = play(world, MixedPolicy(oracle_steps=2))
    first = normalised_score(mixed, random, oracle, seed=4)
    second = normalised_score(mixed, random, oracle, seed=4)
    assert (first.low, first.high) == (second.low, second.high)


def test_rejects_unpaired_results(
    world: SyntheticWorld, baselines: tuple[EpisodeResults, EpisodeResults]
) -> None:
    random, oracle = baselines
    other_seed = play(world, OraclePolicy(), seed=1)
    with pytest.raises(ConfigError, match="different tasks or seeds"):
        normalised_score(other_seed, random, oracle)
    with pytest.raises(ConfigError, match="confidence"):
        normalised_score(oracle, random, oracle, confidence=1.5)


def test_difference_equals_score_gap(world: SyntheticWorld) -> None:
    random, oracle = play(world, RandomPolicy(0)), play(world, OraclePolicy())
    early, late = play(world, MixedPolicy(6)), play(world, MixedPolicy(2))
    gap = score_difference(early, late, random, oracle, seed=0)
    expected = (
        normalised_score(early, random, oracle).score - normalised_score(late, random, oracle).score
    )
    assert gap.difference == pytest.approx(expected)
    assert 0 < gap.low < gap.difference < gap.high
