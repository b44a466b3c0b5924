"""The log-replay environment: Gymnasium API, seeding, rewards, slate checks and termination."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarec.data.interactions import InteractionLog
from metarec.envs.replay import PAD_FEEDBACK, LoggedUserEnv
from metarec.session import CLICK, HISTORY, SKIP

N_ITEMS = 50


@pytest.fixture()
def log(build_log: Callable[..., InteractionLog]) -> InteractionLog:
    rng = np.random.default_rng(0)
    sequences = [rng.permutation(N_ITEMS)[:length].tolist() for length in (12, 15, 20, 8)]
    # User 4: support [0, 1] and query [2, 3] at K = 2; user 5 has a single interaction.
    sequences += [[0, 1, 2, 3], [9]]
    return build_log(sequences, n_items=N_ITEMS)


def make_env(log: InteractionLog, **options: object) -> LoggedUserEnv:
    settings: dict[str, object] = {
        "shots_range": (1, 5),
        "slate_size": 3,
        "rounds": 4,
        "max_tokens": 16,
    }
    settings.update(options)
    return LoggedUserEnv(log, np.arange(5), **settings)  # type: ignore[arg-type]


def test_passes_gymnasium_check(log: InteractionLog) -> None:
    env = make_env(log)
    # check_env steps with samples of the action space; seeding it keeps them fixed.
    env.action_space.seed(0)
    with warnings.catch_warnings():
        # Gymnasium reports soft API problems as warnings, so they fail the test too.
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)


def test_gymnasium_make(log: InteractionLog) -> None:
    env = gymnasium.make("metarec/LoggedUser-v0", log=log, users=np.arange(5))
    observation, info = env.reset(seed=3, options={"user": 4, "shots": 2})
    assert env.observation_space.contains(observation)
    _, reward, terminated, truncated, _ = env.step(np.array([2, 5, 6, 7, 8, 9, 10, 11, 12, 13]))
    assert info == {"user": 4, "shots": 2}
    assert reward == 1.0
    assert not terminated
    assert not truncated


def test_same_seed_same_episode(log: InteractionLog) -> None:
    first, second = make_env(log), make_env(log)
    observation_a, info_a = first.reset(seed=11)
    observation_b, info_b = second.reset(seed=11)
    assert info_a == info_b
    np.testing.assert_array_equal(observation_a["items"], observation_b["items"])
    slate = np.setdiff1d(np.arange(N_ITEMS), observation_a["items"])[:3]
    _, reward_a, _, _, step_info_a = first.step(slate)
    _, reward_b, _, _, step_info_b = second.step(slate)
    assert reward_a == reward_b
    np.testing.assert_array_equal(step_info_a["clicked"], step_info_b["clicked"])


def test_seeded_resets_cover_users_and_shots(log: InteractionLog) -> None:
    env = make_env(log)
    infos = [env.reset(seed=seed)[1] for seed in range(40)]
    users = {info["user"] for info in infos}
    shots = {info["shots"] for info in infos}
    # User 5 has one interaction, so it can never be a task.
    assert users == {0, 1, 2, 3, 4}
    assert shots <= {1, 2, 3, 4, 5}
    assert len(shots) > 1


def test_drawn_shots_leave_query(log: InteractionLog) -> None:
    env = make_env(log, shots_range=(1, 20))
    for seed in range(30):
        _, info = env.reset(seed=seed)
        assert info["shots"] < log.user_lengths()[info["user"]]


def test_reward_counts_query_clicks(log: InteractionLog) -> None:
    env = make_env(log)
    env.reset(options={"user": 4, "shots": 2})
    _, reward, _, _, info = env.step(np.array([3, 40, 2]))
    assert reward == 2.0
    assert info["clicked"].tolist() == [True, False, True]


def test_observation_tokens(log: InteractionLog) -> None:
    env = make_env(log)
    env.reset(options={"user": 4, "shots": 2})
    observation, _, _, _, _ = env.step(np.array([3, 40, 41]))
    assert observation["items"][:5].tolist() == [0, 1, 3, 40, 41]
    assert observation["feedback"][:5].tolist() == [HISTORY, HISTORY, CLICK, SKIP, SKIP]
    assert int(observation["length"]) == 5
    assert (observation["items"][5:] == N_ITEMS).all()
    assert (observation["feedback"][5:] == PAD_FEEDBACK).all()


def test_observation_keeps_last_tokens(log: InteractionLog) -> None:
    env = make_env(log, max_tokens=8)
    observation, _ = env.reset(options={"user": 2, "shots": 10})
    support = log.user_items(2)[:10]
    assert observation["items"].tolist() == support[-8:].tolist()
    assert int(observation["length"]) == 8


def test_remaining_query(log: InteractionLog) -> None:
    env = make_env(log)
    env.reset(options={"user": 4, "shots": 2})
    env.step(np.array([3, 40, 41]))
    assert env.remaining_query().tolist() == [2]


def test_terminates_after_rounds(log: InteractionLog) -> None:
    env = make_env(log, rounds=2)
    env.reset(options={"user": 4, "shots": 2})
    _, _, first_done, _, _ = env.step(np.array([10, 11, 12]))
    _, _, second_done, truncated, _ = env.step(np.array([13, 14, 15]))
    assert not first_done
    assert second_done
    assert not truncated


def test_terminates_when_query_used_up(log: InteractionLog) -> None:
    env = make_env(log, rounds=4)
    env.reset(options={"user": 4, "shots": 2})
    _, reward, terminated, _, _ = env.step(np.array([2, 3, 10]))
    assert reward == 2.0
    assert terminated
    assert env.finished


@pytest.mark.parametrize(
    ("slate", "message"),
    [
        ([10, 10, 11], "slate items must be distinct"),
        ([10, 11, N_ITEMS], r"slate items must lie in \[0, 50\)"),
        ([-1, 10, 11], r"slate items must lie in \[0, 50\)"),
        ([10, 11], "a slate must hold 3 items; got 2"),
        ([10, 11, 12, 13], "a slate must hold 3 items; got 4"),
        ([0, 10, 11], r"slate repeats items already shown to the user: \[0\]"),
    ],
)
def test_invalid_slate_rejected(log: InteractionLog, slate: list[int], message: str) -> None:
    env = make_env(log)
    env.reset(options={"user": 4, "shots": 2})
    with pytest.raises(ValueError, match=message):
        env.step(np.array(slate))


def test_slate_repeating_earlier_slate_rejected(log: InteractionLog) -> None:
    env = make_env(log)
    env.reset(options={"user": 4, "shots": 2})
    env.step(np.array([10, 11, 12]))
    with pytest.raises(ValueError, match=r"already shown to the user: \[12\]"):
        env.step(np.array([12, 13, 14]))


def test_rejected_slate_changes_nothing(log: InteractionLog) -> None:
    env = make_env(log)
    env.reset(options={"user": 4, "shots": 2})
    with pytest.raises(ValueError, match="distinct"):
        env.step(np.array([2, 2, 3]))
    assert len(env.session) == 2
    assert env.remaining_query().tolist() == [2, 3]


def test_reset_shots_without_query(log: InteractionLog) -> None:
    env = make_env(log)
    with pytest.raises(ValueError, match="shots=4 leaves no query items for user u4"):
        env.reset(options={"user": 4, "shots": 4})


def test_no_eligible_user(log: InteractionLog) -> None:
    with pytest.raises(ValueError, match="no user has more than 1 interactions"):
        LoggedUserEnv(log, np.array([5]), shots_range=(1, 5))
