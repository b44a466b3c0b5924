"""Simulated users: Gymnasium API, seeding, quitting, reward types, slate checks, vector env."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarec.baselines.popularity import Popularity
from metarec.envs.response import ResponseModel
from metarec.envs.rewards import RewardModel
from metarec.envs.simulated import SimulatedUserEnv
from metarec.envs.synthetic import DriftKind, SyntheticWorld, make_synthetic_world
from metarec.envs.vector import SimulatedUserVectorEnv
from metarec.errors import ConfigError
from metarec.session import CLICK, HISTORY, SKIP
from metarec.simulation.policies import OraclePolicy, RandomPolicy, RecommenderPolicy
from metarec.simulation.runner import average_episodes, episode_seed, run_episodes
from metarec.tasks.task import Task

N_ITEMS = 60


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return make_synthetic_world(40, N_ITEMS, 6, seed=0, history_length=3, log_length=8)


def make_env(world: SyntheticWorld, **options: Any) -> SimulatedUserEnv:
    settings: dict[str, Any] = {"slate_size": 4, "rounds": 5, "max_tokens": 12}
    settings.update(options)
    return SimulatedUserEnv(world.response, world.tasks, **settings)


def zero_attraction(world: SyntheticWorld) -> ResponseModel:
    # An offset of -1000 makes every attraction exactly 0 in float64.
    return replace(world.response, offset=-1000.0)


def test_passes_gymnasium_check(world: SyntheticWorld) -> None:
    # check_env steps with a sample of the action space, so tasks start without history.
    fresh = [replace(task, history=np.zeros(0, dtype=np.int64)) for task in world.tasks]
    env = SimulatedUserEnv(world.response, fresh, slate_size=4, rounds=5, max_tokens=12)
    env.action_space.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)


def test_gymnasium_make(world: SyntheticWorld) -> None:
    env = gymnasium.make(
        "metarec/SimulatedUser-v0", response=world.response, tasks=world.tasks, slate_size=3
    )
    observation, info = env.reset(seed=1, options={"task": 7})
    assert info["task"] == 7
    assert env.observation_space.contains(observation)
    np.testing.assert_array_equal(observation["items"][:3], world.tasks[7].history)
    np.testing.assert_array_equal(observation["feedback"][:3], [HISTORY] * 3)
    assert int(observation["length"]) == 3


def test_same_seed_same_episode(world: SyntheticWorld) -> None:
    first, second = make_env(world), make_env(world)
    _, info_a = first.reset(seed=11)
    _, info_b = second.reset(seed=11)
    assert info_a == info_b
    slates = np.flatnonzero(first.allowed_mask())[:20].reshape(5, 4)
    for slate in slates:
        step_a = first.step(slate)
        step_b = second.step(slate)
        np.testing.assert_array_equal(step_a[0]["items"], step_b[0]["items"])
        np.testing.assert_array_equal(step_a[4]["clicked"], step_b[4]["clicked"])
        assert step_a[1] == step_b[1]
        if step_a[2]:
            break


def test_session_records_clicks_and_skips(world: SyntheticWorld) -> None:
    env = make_env(world, patience=None)
    env.reset(seed=2, options={"task": 0})
    slate = np.flatnonzero(env.allowed_mask())[:4]
    observation, reward, _, _, info = env.step(slate)
    expected_feedback = np.where(info["clicked"], CLICK, SKIP)
    np.testing.assert_array_equal(env.session.items[-4:], slate)
    np.testing.assert_array_equal(env.session.feedback[-4:], expected_feedback)
    np.testing.assert_array_equal(observation["items"][3:7], slate)
    assert reward == info["clicked"].sum()
    assert not env.allowed_mask()[slate].any()
    assert env.step_index == 1


def test_user_quits_after_patience(world: SyntheticWorld) -> None:
    env = SimulatedUserEnv(zero_attraction(world), world.tasks, slate_size=4, rounds=10, patience=3)
    env.reset(seed=0, options={"task": 1})
    slates = np.flatnonzero(env.allowed_mask())[:12].reshape(3, 4)
    outcomes = [env.step(slate) for slate in slates]
    assert [outcome[2] for outcome in outcomes] == [False, False, True]
    assert [outcome[4]["quit"] for outcome in outcomes] == [False, False, True]
    assert env.finished
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.flatnonzero(env.allowed_mask())[:4])


def test_patience_none_plays_all_rounds(world: SyntheticWorld) -> None:
    env = SimulatedUserEnv(
        zero_attraction(world), world.tasks, slate_size=4, rounds=6, patience=None
    )
    env.reset(seed=0, options={"task": 1})
    results = RandomPolicy(0)
    terminated = False
    steps = 0
    while not terminated:
        _, _, terminated, _, info = env.step(results.act([env])[0])
        steps += 1
        assert not info["quit"]
    assert steps == 6


def test_click_needs_examination(world: SyntheticWorld) -> None:
    # Every item attracts with probability 1, so clicks follow examination alone.
    certain = replace(world.response, offset=1000.0)
    env = SimulatedUserEnv(certain, world.tasks, slate_size=5, rounds=8, patience=None)
    clicks = []
    for seed in range(200):
        env.reset(seed=seed, options={"task": 0})
        clicks.append(env.step(np.flatnonzero(env.allowed_mask())[:5])[4]["clicked"])
    rates = np.mean(clicks, axis=0)
    np.testing.assert_allclose(rates, env.examination, atol=0.1)
    assert rates[0] == 1.0


@pytest.mark.parametrize("kind", ["click", "rating", "purchase", "revenue"])
def test_expected_reward_matches_mean(world: SyntheticWorld, kind: str) -> None:
    env = make_env(world, reward=kind, patience=None, slate_size=5)
    env.reset(seed=0, options={"task": 3})
    slate = np.argsort(-env.item_values() * env.allowed_mask())[:5]
    rewards, expected = [], []
    for seed in range(3000):
        env.reset(seed=seed, options={"task": 3})
        _, reward, _, _, info = env.step(slate)
        rewards.append(reward)
        expected.append(info["expected_reward"])
    assert np.ptp(expected) == 0.0
    error = np.std(rewards) / np.sqrt(len(rewards))
    assert abs(np.mean(rewards) - expected[0]) < 4 * error + 1e-9


def test_reward_types_value_clicks(world: SyntheticWorld) -> None:
    shop = RewardModel.synthetic("revenue", N_ITEMS, seed=0)
    clicked = np.array([[True, False, True]])
    items = np.array([[0, 1, 2]])
    attraction = np.array([[0.5, 0.9, 1.0]])
    always = np.zeros((1, 3))
    never = np.ones((1, 3))
    rating = replace(shop, kind="rating").realised(clicked, attraction, items, always)
    np.testing.assert_allclose(rating, [[3.0, 0.0, 5.0]])
    revenue = shop.realised(clicked, attraction, items, always)
    np.testing.assert_allclose(revenue, [[shop.price[0], 0.0, shop.price[2]]])
    assert shop.realised(clicked, attraction, items, never).sum() == 0.0
    assert 0.1 < shop.purchase_probability.mean() < 0.3
    with pytest.raises(ConfigError, match="unknown reward type"):
        RewardModel.synthetic("likes", N_ITEMS)


@pytest.mark.parametrize(
    ("slate", "message"),
    [
        ([0, 1, 2], "must hold 4 items"),
        ([0, 1, 2, N_ITEMS], "must lie in"),
        ([5, 5, 6, 7], "distinct"),
        ("history", "already shown"),
        ("outside", "outside the items"),
    ],
)
def test_rejects_invalid_slates(world: SyntheticWorld, slate: object, message: str) -> None:
    domain = replace(world.tasks[0], items=np.arange(40))
    env = SimulatedUserEnv(world.response, [domain], slate_size=4)
    env.reset(seed=0)
    if slate == "history":
        free = np.flatnonzero(env.allowed_mask())[:3]
        slate = [int(domain.history[0]), *free.tolist()]
    if slate == "outside":
        slate = np.setdiff1d(np.arange(40, N_ITEMS), domain.history)[:4]
    with pytest.raises(ValueError, match=message):
        env.step(np.array(slate))


def test_allowed_mask_excludes_domain_and_shown(world: SyntheticWorld) -> None:
    domain = replace(world.tasks[0], items=np.arange(10, 40))
    env = SimulatedUserEnv(world.response, [domain], slate_size=4)
    env.reset(seed=0)
    mask = env.allowed_mask()
    assert not mask[:10].any()
    assert not mask[40:].any()
    assert not mask[domain.history].any()
    assert mask.sum() == 30 - np.isin(domain.history, np.arange(10, 40)).sum()


def test_ends_when_items_run_out(world: SyntheticWorld) -> None:
    history = world.tasks[0].history
    free = np.setdiff1d(np.arange(N_ITEMS), history)[:8]
    domain = replace(world.tasks[0], items=np.concatenate([history, free]))
    env = SimulatedUserEnv(world.response, [domain], slate_size=4, rounds=10, patience=None)
    env.reset(seed=0)
    first = env.step(free[:4])
    second = env.step(free[4:])
    assert not first[2]
    assert second[2]
    assert not second[4]["quit"]
    assert env.step_index == 2


def test_rejects_mismatched_tasks(world: SyntheticWorld) -> None:
    wrong = Task("bad", "user", np.zeros(world.response.dim + 1))
    with pytest.raises(ConfigError, match="dim="):
        SimulatedUserEnv(world.response, [wrong])
    outside = Task("far", "user", world.tasks[0].preference, history=np.array([N_ITEMS + 3]))
    with pytest.raises(ConfigError, match="outside"):
        SimulatedUserEnv(world.response, [outside])
    with pytest.raises(ConfigError, match="patience"):
        SimulatedUserEnv(world.response, world.tasks, patience=0)
    tiny_domain = replace(world.tasks[0], items=np.arange(5))
    with pytest.raises(ConfigError, match="fewer than slate_size=10"):
        SimulatedUserEnv(world.response, [tiny_domain], slate_size=10)
    with pytest.raises(ConfigError, match="fewer than slate_size=10"):
        SimulatedUserVectorEnv(world.response, [tiny_domain], 2, slate_size=10)


def test_drift_changes_attraction() -> None:
    drifting = make_synthetic_world(5, 50, 5, seed=1, drift="sudden", drift_step=2)
    env = SimulatedUserEnv(drifting.response, drifting.tasks, slate_size=2, patience=None)
    env.reset(seed=0, options={"task": 0})
    before = env.attraction()
    for _ in range(2):
        env.step(np.flatnonzero(env.allowed_mask())[:2])
    after = env.attraction()
    target = drifting.tasks[0].drift_to
    assert target is not None
    np.testing.assert_allclose(after, drifting.response.attraction(target))
    assert np.abs(after - before).max() > 0.1


def test_oracle_beats_random_clearly() -> None:
    large = make_synthetic_world(100, 1000, 20, seed=2)

    def factory() -> SimulatedUserEnv:
        return SimulatedUserEnv(large.response, large.tasks, slate_size=10, rounds=10)

    oracle = run_episodes(OraclePolicy(), factory, seed=0)
    random = run_episodes(RandomPolicy(0), factory, seed=0)
    # Measured: oracle 7.38 clicks per episode, random 0.72. The test requires a factor of 5.
    assert oracle.mean_return > 5 * random.mean_return
    assert oracle.mean_return > random.mean_return + 3.0
    assert oracle.lengths.mean() > random.lengths.mean()


def test_runner_same_seed_same_results(world: SyntheticWorld) -> None:
    def factory() -> SimulatedUserEnv:
        return make_env(world)

    first = run_episodes(RandomPolicy(3), factory, seed=5, batch_size=7)
    second = run_episodes(RandomPolicy(3), factory, seed=5, batch_size=16)
    np.testing.assert_array_equal(first.rewards, second.rewards)
    np.testing.assert_array_equal(first.active, second.active)
    other = run_episodes(RandomPolicy(3), factory, seed=6)
    assert not np.array_equal(first.rewards, other.rewards)
    ended = ~first.active
    assert (first.rewards[ended] == 0).all()
    np.testing.assert_array_equal(first.returns, first.rewards.sum(axis=1))


def test_average_episodes_means_each_task(world: SyntheticWorld) -> None:
    def factory() -> SimulatedUserEnv:
        return make_env(world)

    runs = [run_episodes(RandomPolicy(1), factory, seed=seed) for seed in (5, 6, 7)]
    mean = average_episodes(runs)
    np.testing.assert_allclose(
        mean.rewards, (runs[0].rewards + runs[1].rewards + runs[2].rewards) / 3
    )
    np.testing.assert_allclose(mean.returns, np.mean([run.returns for run in runs], axis=0))
    # active becomes the share of the three episodes still running at each step.
    shares = mean.active[runs[0].active != runs[1].active]
    assert shares.size > 0
    assert set(np.round(shares * 3).tolist()) <= {1.0, 2.0}
    assert average_episodes(runs[:1]) is runs[0]
    with pytest.raises(ConfigError, match="invalid runs to average"):
        average_episodes([runs[0], run_episodes(RandomPolicy(1), factory, tasks=[0, 1], seed=5)])
    with pytest.raises(ConfigError, match="got no runs"):
        average_episodes([])


def test_common_random_numbers_across_policies(world: SyntheticWorld) -> None:
    # A policy's slates do not change the user's draws: the same slate gets the same clicks.
    env_a, env_b = make_env(world), make_env(world)
    seed = episode_seed(0, 4)
    env_a.reset(seed=seed, options={"task": 4})
    env_b.reset(seed=seed, options={"task": 4})
    oracle_slate = OraclePolicy().act([env_a])[0]
    env_b.step(RandomPolicy(1).act([env_b])[0])
    shifted = env_a.step(oracle_slate)[4]["clicked"]
    env_c = make_env(world)
    env_c.reset(seed=seed, options={"task": 4})
    again = env_c.step(oracle_slate)[4]["clicked"]
    np.testing.assert_array_equal(shifted, again)


def test_recommender_policy_shows_allowed_items(world: SyntheticWorld) -> None:
    popularity = Popularity().fit(world.log.to_csr())
    policy = RecommenderPolicy(popularity)
    env = make_env(world)
    env.reset(seed=0, options={"task": 2})
    slate = policy.act([env])[0]
    assert env.allowed_mask()[slate].all()
    counts = popularity.counts_.copy()
    counts[~env.allowed_mask()] = -1
    assert counts[slate].min() >= np.sort(counts)[-4]
    results = run_episodes(policy, lambda: make_env(world), seed=0)
    assert results.policy == "Popularity"


@pytest.mark.parametrize(("reward", "drift"), [("rating", "none"), ("revenue", "gradual")])
def test_vector_env_matches_single_envs(reward: str, drift: DriftKind) -> None:
    world = make_synthetic_world(
        40, N_ITEMS, 6, seed=0, history_length=3, log_length=8, drift=drift, drift_step=2
    )
    batch = 6
    vector = SimulatedUserVectorEnv(
        world.response, world.tasks, batch, slate_size=4, rounds=5, max_tokens=12, reward=reward
    )
    singles = [make_env(world, reward=reward) for _ in range(batch)]
    observations, info = vector.reset(seed=9)
    for user, env in enumerate(singles):
        single_observation, single_info = env.reset(seed=9 + user)
        assert single_info["task"] == info["task"][user]
        np.testing.assert_array_equal(single_observation["items"], observations["items"][user])
    policy = RandomPolicy(0)
    for _ in range(5):
        playing = [user for user, env in enumerate(singles) if not env.finished]
        actions = RandomPolicyVector.act(vector)
        actions[playing] = policy.act([singles[user] for user in playing])
        observations, rewards, terminated, _, info = vector.step(actions)
        for user in playing:
            single = singles[user].step(actions[user])
            assert single[1] == pytest.approx(rewards[user])
            assert single[2] == terminated[user]
            np.testing.assert_array_equal(single[4]["clicked"], info["clicked"][user])
            np.testing.assert_array_equal(single[0]["items"], observations["items"][user])
            np.testing.assert_array_equal(single[0]["feedback"], observations["feedback"][user])
        if all(env.finished for env in singles):
            break


@pytest.mark.parametrize("drift", ["sudden", "gradual"])
def test_vector_env_follows_drift(drift: DriftKind) -> None:
    drifting = make_synthetic_world(8, 80, 5, seed=2, drift=drift, drift_step=1, drift_span=3)
    vector = SimulatedUserVectorEnv(
        drifting.response, drifting.tasks, 4, slate_size=3, rounds=6, patience=None
    )
    vector.reset(seed=0)
    for step in range(5):
        for user in range(4):
            task = drifting.tasks[int(vector.task_index[user])]
            np.testing.assert_allclose(vector.preferences()[user], task.preference_at(step))
        vector.step(RandomPolicyVector.act(vector))


def test_vector_env_partial_reset(world: SyntheticWorld) -> None:
    vector = SimulatedUserVectorEnv(world.response, world.tasks, 3, slate_size=3)
    vector.reset(seed=0, options={"task": [1, 2, 3]})
    vector.step(RandomPolicyVector.act(vector))
    mask = np.array([False, True, False])
    observations, info = vector.reset(options={"reset_mask": mask, "task": 5})
    np.testing.assert_array_equal(vector.step_index, [1, 0, 1])
    np.testing.assert_array_equal(vector.task_index, [1, 5, 3])
    np.testing.assert_array_equal(info["_task"], mask)
    assert observations["length"][1] == 3
    assert observations["length"][0] == 6


def test_vector_env_oracle_values(world: SyntheticWorld) -> None:
    vector = SimulatedUserVectorEnv(world.response, world.tasks, 3, slate_size=3, reward="revenue")
    vector.reset(seed=4)
    for user in range(3):
        env = make_env(world, slate_size=3, reward="revenue")
        env.reset(seed=4 + user)
        np.testing.assert_allclose(vector.item_values()[user], env.item_values())
        np.testing.assert_array_equal(vector.allowed_mask()[user], env.allowed_mask())
        np.testing.assert_array_equal(vector.sessions()[user].items, env.session.items)


def test_vector_env_spaces_and_seeding(world: SyntheticWorld) -> None:
    vector = SimulatedUserVectorEnv(world.response, world.tasks, 4, slate_size=3)
    first, _ = vector.reset(seed=1)
    assert vector.observation_space.contains(first)
    again, _ = vector.reset(seed=1)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    actions = RandomPolicyVector.act(vector)
    observations, rewards, terminated, truncated, _ = vector.step(actions)
    assert vector.observation_space.contains(observations)
    assert rewards.shape == terminated.shape == truncated.shape == (4,)
    with pytest.raises(ValueError, match="distinct"):
        vector.step(np.zeros((4, 3), dtype=np.int64))


def test_vector_env_autoresets_next_step(world: SyntheticWorld) -> None:
    vector = SimulatedUserVectorEnv(
        zero_attraction(world), world.tasks, 3, slate_size=3, patience=1
    )
    vector.reset(seed=0)
    _, _, terminated, _, _ = vector.step(RandomPolicyVector.act(vector))
    assert terminated.all()
    observations, rewards, terminated, _, info = vector.step(np.zeros((3, 3), dtype=np.int64))
    assert not terminated.any()
    assert (rewards == 0).all()
    assert not info["_clicked"].any()
    assert (vector.step_index == 0).all()
    assert (observations["length"] == 3).all()


class RandomPolicyVector:
    """Uniform allowed slates for every user of a vector env."""

    @staticmethod
    def act(vector: SimulatedUserVectorEnv) -> np.ndarray:
        rng = np.random.default_rng(0)
        keys = np.where(vector.allowed_mask(), rng.random((vector.num_envs, vector.n_items)), -1)
        return np.argsort(-keys, axis=1)[:, : vector.slate_size]
