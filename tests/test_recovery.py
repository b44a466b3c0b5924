"""Recovery figures after a preference switch, on hand-made reward curves."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.experiments.recovery import (
    first_slate_share,
    kept_share,
    measure_recovery,
    paired_differences,
    recovery_against_control,
    recovery_time,
    user_recovery_steps,
)
from metarec.simulation.runner import EpisodeResults, average_episodes


def _results(name: str, rewards: np.ndarray) -> EpisodeResults:
    users = rewards.shape[0]
    return EpisodeResults(
        name,
        np.arange(users),
        0,
        rewards,
        rewards,
        (rewards > 0).astype(np.int64),
        np.ones_like(rewards, dtype=bool),
        np.zeros(users, dtype=bool),
    )


def test_recovery_time_counts_steps_after_switch() -> None:
    curve = np.array([2.0, 2.0, 2.0, 0.5, 1.0, 1.9, 2.0])
    assert recovery_time(curve, 3) == 2.0


def test_recovery_time_zero_without_drop() -> None:
    assert recovery_time(np.array([1.0, 1.0, 1.0, 0.95, 1.0]), 3) == 0.0


def test_recovery_time_infinite_when_never_back() -> None:
    assert recovery_time(np.array([1.0, 1.0, 1.0, 0.2, 0.3]), 3) == float("inf")


def test_recovery_against_control_follows_a_falling_reference() -> None:
    # Without the switch the reward falls as good items run out. The switched curve
    # never regains its pre-switch level, but it is back at 90% of the reference
    # two steps after the switch.
    control = np.array([2.0, 2.0, 2.0, 1.5, 1.2, 1.0, 0.8])
    curve = np.array([2.0, 2.0, 2.0, 0.3, 0.9, 0.95, 0.8])
    assert recovery_time(curve, 3) == float("inf")
    assert recovery_against_control(curve, control, 3) == 2.0


def test_recovery_against_control_zero_and_infinite() -> None:
    control = np.ones(6)
    assert recovery_against_control(np.ones(6), control, 3) == 0.0
    assert recovery_against_control(np.array([1, 1, 1, 0.5, 0.6, 0.7]), control, 3) == np.inf


def test_kept_share_sums_from_the_switch() -> None:
    control = np.array([1.0, 1.0, 2.0, 2.0])
    curve = np.array([1.0, 1.0, 1.0, 2.0])
    assert kept_share(curve, control, 2) == pytest.approx(0.75)
    assert np.isnan(kept_share(curve, np.zeros(4), 2))


def test_first_slate_share_reads_step_after_switch() -> None:
    control = np.array([1.0, 1.0, 2.0, 4.0, 4.0])
    curve = np.array([1.0, 1.0, 0.5, 3.0, 4.0])
    assert first_slate_share(curve, control, 2) == pytest.approx(0.75)
    assert np.isnan(first_slate_share(curve, control, 4))
    assert np.isnan(first_slate_share(curve, np.zeros(5), 2))


def test_measure_recovery_of_an_unaffected_policy() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.uniform(0.5, 1.5, size=(50, 8))
    figures = measure_recovery(
        {"steady": _results("steady", rewards)}, {"steady": _results("steady", rewards)}, 4, 0
    )["steady"]
    assert figures["control_recovery_steps"] == 0.0
    assert not figures["control_dropped"]
    assert figures["kept"] == pytest.approx(1.0)
    assert figures["kept_low"] == pytest.approx(1.0)
    assert figures["kept_high"] == pytest.approx(1.0)
    assert figures["first"] == pytest.approx(1.0)


def test_share_differences_rank_faster_policy_higher() -> None:
    rng = np.random.default_rng(1)
    control = rng.uniform(0.8, 1.2, size=(200, 8))
    fast, slow = control.copy(), control.copy()
    fast[:, 4] *= 0.5  # one bad step after the switch
    slow[:, 4:7] *= 0.5  # three bad steps
    shifted = {"fast": _results("fast", fast), "slow": _results("slow", slow)}
    controls = {"fast": _results("fast", control), "slow": _results("slow", control)}
    figures = measure_recovery(shifted, controls, 4, 0)
    assert figures["fast"]["control_recovery_steps"] == 1.0
    assert figures["slow"]["control_recovery_steps"] == 3.0
    difference = paired_differences(shifted, controls, "fast", 4, 0)["slow"]
    # fast keeps 3.5 of 4 steps' reward and slow 2.5 of 4 (up to the random control).
    assert difference["kept"] == pytest.approx(0.25, abs=0.02)
    assert 0 < difference["kept_low"] <= difference["kept"] <= difference["kept_high"]
    # On the first slate after the switch step fast is back in full and slow at half.
    assert difference["first"] == pytest.approx(0.5, abs=0.02)
    assert 0 < difference["first_low"] <= difference["first"] <= difference["first_high"]


def test_user_recovery_steps_each_user() -> None:
    control = _results("policy", np.ones((4, 6)))
    shifted = np.ones((4, 6))
    shifted[0, 3] = 0.5  # back one step after the switch
    shifted[1, 3:] = 0.5  # never back: counts the 3 steps left
    shifted[2, 3] = 0.95  # still at 90% on the switch step
    result = _results("policy", shifted)
    result.active[3, 2:] = False  # left before the switch

    steps = user_recovery_steps(result, control, 3)
    np.testing.assert_array_equal(steps[:3], [1.0, 3.0, 0.0])
    assert np.isnan(steps[3])

    figures = measure_recovery({"policy": result}, {"policy": control}, 3, 0)["policy"]
    assert figures["user_steps"] == pytest.approx(4.0 / 3.0)
    assert figures["user_back"] == pytest.approx(2.0 / 3.0)
    assert figures["user_dropped"] == pytest.approx(2.0 / 3.0)
    assert figures["user_dropped_steps"] == pytest.approx(2.0)
    assert figures["user_low"] <= figures["user_steps"]
    assert figures["user_steps"] <= figures["user_high"]


def test_user_recovery_without_users_left() -> None:
    control = _results("policy", np.ones((3, 6)))
    result = _results("policy", np.ones((3, 6)))
    result.active[:, 1:] = False
    figures = measure_recovery({"policy": result}, {"policy": control}, 3, 0)["policy"]
    assert np.isnan(figures["user_steps"])
    assert np.isnan(figures["user_dropped_steps"])


def test_user_recovery_averaged_episodes() -> None:
    control = average_episodes([_results("policy", np.ones((2, 6)))] * 2)
    first, second = _results("policy", np.ones((2, 6))), _results("policy", np.ones((2, 6)))
    first.rewards[0, 3:] = first.expected_rewards[0, 3:] = 0.0
    first.active[0, 3:] = False  # user 0 leaves at the switch in one episode of two
    second.expected_rewards[0, 3] = 0.7
    first.active[1, 2:] = second.active[1, 2:] = False  # user 1 leaves before it in both
    steps = user_recovery_steps(average_episodes([first, second]), control, 3)
    # User 0's expected curve from the switch is 0.35, 0.5, 0.5: never back to 0.9.
    assert steps[0] == 3.0
    assert np.isnan(steps[1])


def test_paired_steps_favour_faster_policy() -> None:
    rng = np.random.default_rng(2)
    control = rng.uniform(0.8, 1.2, size=(200, 8))
    fast, slow = control.copy(), control.copy()
    fast[:, 4] *= 0.5
    slow[:100, 4:7] *= 0.5  # half the users take three steps, half one
    slow[100:, 4] *= 0.5
    shifted = {"fast": _results("fast", fast), "slow": _results("slow", slow)}
    controls = {"fast": _results("fast", control), "slow": _results("slow", control)}
    difference = paired_differences(shifted, controls, "fast", 4, 0)["slow"]
    assert difference["steps"] == pytest.approx(-1.0)
    assert difference["steps_low"] <= -1.0
    assert difference["steps_high"] >= -1.0
    assert difference["steps_high"] < 0
