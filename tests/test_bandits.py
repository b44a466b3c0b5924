"""Linear bandit baselines and their item embeddings, on worlds whose optimum is known."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from metarec.data.interactions import InteractionLog
from metarec.envs.response import ResponseModel, examination_probabilities
from metarec.envs.simulated import SimulatedUserEnv
from metarec.recommender import top_k
from metarec.session import CLICK, HISTORY, SKIP, Session
from metarec.simulation.bandits import EpsilonGreedy, LinUCB, ThompsonSampling, fill_slates
from metarec.simulation.embeddings import ItemEmbeddings, fit_item_embeddings, fit_log_embeddings
from metarec.simulation.policies import OraclePolicy, RandomPolicy, RecommenderPolicy
from metarec.simulation.runner import EpisodeResults, run_episodes
from metarec.tasks.task import Task

torch.set_num_threads(1)

N_ITEMS = 400
DIM = 6
N_USERS = 60
SLATE = 5
ROUNDS = 15


def _linear_world() -> tuple[ResponseModel, list[Task], ItemEmbeddings]:
    """Draw Gaussian item factors and user vectors. The bandits get the true factors and prior."""
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(N_ITEMS, DIM)) / np.sqrt(DIM)
    preferences = rng.normal(0.5, 1.5, size=(N_USERS, DIM))
    response = ResponseModel(
        item_factors=factors,
        item_bias=np.zeros(N_ITEMS),
        offset=-3.5,
        user_factors=preferences,
        position_bias=examination_probabilities(eta=0.0),
    )
    tasks = [Task(f"linear-{u}", "synthetic", preferences[u], user=u) for u in range(N_USERS)]
    embeddings = ItemEmbeddings(
        factors, preferences.mean(axis=0), np.cov(preferences, rowvar=False)
    )
    return response, tasks, embeddings


@pytest.fixture(scope="module")
def linear_world() -> tuple[ResponseModel, list[Task], ItemEmbeddings]:
    return _linear_world()


@pytest.fixture(scope="module")
def make_env(
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
) -> Callable[[], SimulatedUserEnv]:
    response, tasks, _ = linear_world
    return lambda: SimulatedUserEnv(response, tasks, slate_size=SLATE, rounds=ROUNDS, patience=None)


@pytest.fixture(scope="module")
def reference_runs(make_env: Callable[[], SimulatedUserEnv]) -> dict[str, EpisodeResults]:
    return {
        "oracle": run_episodes(OraclePolicy(), make_env, seed=1),
        "random": run_episodes(RandomPolicy(0), make_env, seed=1),
    }


def _session(items: list[int], feedback: list[int]) -> Session:
    return Session(np.array(items, dtype=np.int64), np.array(feedback, dtype=np.int64))


@pytest.mark.parametrize("name", ["LinUCB", "ThompsonSampling"])
def test_bandit_beats_random_and_regret_falls(
    name: str,
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
    make_env: Callable[[], SimulatedUserEnv],
    reference_runs: dict[str, EpisodeResults],
) -> None:
    embeddings = linear_world[2]
    bandit = (
        LinUCB(embeddings, alpha=0.3, prior_strength=1.0)
        if name == "LinUCB"
        else ThompsonSampling(embeddings, prior_strength=1.0, noise=0.3)
    )
    results = run_episodes(RecommenderPolicy(bandit), make_env, seed=1)
    oracle, random = reference_runs["oracle"], reference_runs["random"]
    normalised = (results.mean_return - random.mean_return) / (
        oracle.mean_return - random.mean_return
    )
    # Random earns about 5 per episode here, the oracle about 17 and both bandits about 14.
    assert normalised > 0.5
    regret = (oracle.expected_rewards - results.expected_rewards).mean(axis=0)
    assert regret[-3:].mean() < 0.5 * regret[:3].mean()
    assert regret[0] > 0.5


def test_epsilon_zero_is_greedy_ridge(
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
) -> None:
    embeddings = linear_world[2]
    sessions = [
        _session([3, 7, 11], [HISTORY, CLICK, SKIP]),
        _session([5], [HISTORY]),
        _session([], []),
    ]
    ridge = 2.0
    bandit = EpsilonGreedy(embeddings, epsilon=0.0, ridge=ridge, slate_size=SLATE)
    expected = []
    for session in sessions:
        x = embeddings.vectors[session.items]
        r = (session.feedback != SKIP).astype(np.float64)
        theta = np.linalg.solve(
            ridge * np.eye(DIM) + x.T @ x, ridge * embeddings.prior_mean + x.T @ r
        )
        expected.append(embeddings.vectors @ theta)
    np.testing.assert_allclose(bandit.score(sessions), np.array(expected), rtol=1e-4, atol=1e-5)
    greedy = top_k(np.array(expected), N_ITEMS)
    ranked = bandit.recommend(sessions, SLATE)
    assert np.array_equal(ranked[1], greedy[1][~np.isin(greedy[1], [5])][:SLATE])
    assert np.array_equal(ranked[2], greedy[2][:SLATE])


def test_epsilon_greedy_explores_at_rate(
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
) -> None:
    embeddings = linear_world[2]
    sessions = [_session([u % N_ITEMS], [HISTORY]) for u in range(400)]
    greedy = EpsilonGreedy(embeddings, epsilon=0.0, slate_size=SLATE).recommend(sessions, SLATE)
    explorer = EpsilonGreedy(embeddings, epsilon=0.4, slate_size=SLATE, seed=5)
    slates = explorer.recommend(sessions, SLATE)
    # An exploring first slot draws one of ~399 items and almost never hits the greedy one.
    first_differs = np.mean(slates[:, 0] != greedy[:, 0])
    assert 0.33 < first_differs < 0.47
    assert np.all(np.sort(slates, axis=1)[:, 1:] != np.sort(slates, axis=1)[:, :-1])


def test_epsilon_greedy_act_stays_in_domain(
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
) -> None:
    response, tasks, embeddings = linear_world
    domain = np.arange(0, N_ITEMS, 4)
    domain_tasks = [
        Task(f"domain-{t.task_id}", "domain", t.preference, items=domain) for t in tasks[:10]
    ]
    env = SimulatedUserEnv(response, domain_tasks, slate_size=SLATE, rounds=4, patience=None)
    explorer = EpsilonGreedy(embeddings, epsilon=1.0, slate_size=SLATE, seed=2)
    results = run_episodes(explorer, [env])
    assert results.active.all()
    env.reset(seed=0, options={"task": 0})
    for _ in range(4):
        slate = explorer.act([env])[0]
        assert np.isin(slate, domain).all()
        env.step(slate)


@pytest.mark.parametrize("kind", ["EpsilonGreedy", "ThompsonSampling"])
def test_same_seed_same_slates(
    kind: str, linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings]
) -> None:
    embeddings = linear_world[2]

    def build(seed: int) -> EpsilonGreedy | ThompsonSampling:
        if kind == "EpsilonGreedy":
            return EpsilonGreedy(embeddings, epsilon=0.5, seed=seed)
        return ThompsonSampling(embeddings, noise=0.5, seed=seed)

    sessions = [_session([1, 2], [HISTORY, SKIP]), _session([9], [HISTORY]), _session([], [])]
    first = build(3).recommend(sessions, SLATE)
    again = build(3).recommend(sessions, SLATE)
    other = build(4).recommend(sessions, SLATE)
    alone = build(3).recommend(sessions[1:2], SLATE)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    # A session's slate does not depend on the batch it is scored in.
    assert np.array_equal(alone[0], first[1])


def test_thompson_draws_match_posterior(
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
) -> None:
    embeddings = linear_world[2]
    session = _session([4, 8, 15, 16], [HISTORY, CLICK, SKIP, SKIP])
    noise = 0.5
    draws = np.stack(
        [
            ThompsonSampling(embeddings, prior_strength=2.0, noise=noise, seed=s).sample_vectors(
                [session]
            )[0]
            for s in range(3000)
        ]
    )
    sampler = ThompsonSampling(embeddings, prior_strength=2.0, noise=noise)
    mean, precision = sampler.posterior([session])
    covariance = noise**2 * np.linalg.inv(precision[0])
    scale = np.sqrt(np.diag(covariance))
    assert np.all(np.abs(draws.mean(axis=0) - mean[0]) < 4 * scale / np.sqrt(3000))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), covariance, atol=0.1 * scale.max() ** 2)


def test_linucb_scores_add_confidence_width(
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
) -> None:
    embeddings = linear_world[2]
    sessions = [_session([0, 1, 2], [HISTORY, CLICK, SKIP]), _session([], [])]
    alpha = 0.7
    bandit = LinUCB(embeddings, alpha=alpha, prior_strength=1.5)
    mean, precision = bandit.posterior(sessions)
    x = embeddings.vectors
    for row in range(len(sessions)):
        inverse = np.linalg.inv(precision[row])
        width = np.sqrt(np.einsum("id,de,ie->i", x, inverse, x))
        np.testing.assert_allclose(
            bandit.score(sessions)[row], x @ mean[row] + alpha * width, rtol=1e-4, atol=1e-5
        )
    # Items along observed directions are less uncertain after the observations.
    widths = bandit.confidence_widths(precision)
    assert widths[0, 1] < widths[1, 1]


def test_fill_slates_takes_greedy_or_random() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.3]])
    available = np.array([[True, True, True, False]])
    explore = np.array([[False, True, False]])
    keys = np.array([[0.2, 0.8, 0.9, 1.0]])
    slate = fill_slates(scores, available.copy(), explore, keys)
    # Greedy takes item 1, the random draw takes the highest key (item 2), greedy then item 0.
    assert slate.tolist() == [[1, 2, 0]]


def test_bandit_rejects_bad_settings(
    linear_world: tuple[ResponseModel, list[Task], ItemEmbeddings],
) -> None:
    embeddings = linear_world[2]
    with pytest.raises(ValueError, match="epsilon must lie in"):
        EpsilonGreedy(embeddings, epsilon=1.5)
    with pytest.raises(ValueError, match="ridge must be positive"):
        EpsilonGreedy(embeddings, ridge=0.0)
    with pytest.raises(ValueError, match="prior_strength must be positive"):
        ThompsonSampling(embeddings, prior_strength=-1.0)
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        LinUCB(embeddings, alpha=-0.1)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        ThompsonSampling(embeddings, seed=-1)


def _random_log(n_users: int, n_items: int, seed: int) -> InteractionLog:
    rng = np.random.default_rng(seed)
    sequences = [
        rng.choice(n_items, size=rng.integers(5, 25), replace=False) for _ in range(n_users)
    ]
    lengths = [len(s) for s in sequences]
    return InteractionLog(
        user_ids=tuple(f"u{u}" for u in range(n_users)),
        item_ids=tuple(f"i{i}" for i in range(n_items)),
        indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        items=np.concatenate(sequences).astype(np.int64),
    )


def test_embeddings_ignore_held_out_users() -> None:
    log = _random_log(80, 60, seed=1)
    train_users = np.arange(60)
    changed = _random_log(80, 60, seed=2)
    # Same training users, different held-out users.
    items = np.concatenate([log.items[: log.indptr[60]], changed.items[changed.indptr[60] :]])
    indptr = np.concatenate(
        [log.indptr[:61], log.indptr[60] + np.diff(changed.indptr)[60:].cumsum()]
    )
    mixed = InteractionLog(log.user_ids, log.item_ids, indptr, items)
    assert not np.array_equal(mixed.user_items(70), log.user_items(70))
    first = fit_log_embeddings(log, train_users, 8)
    second = fit_log_embeddings(mixed, train_users, 8)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first.prior_mean, second.prior_mean)
    np.testing.assert_array_equal(first.prior_covariance, second.prior_covariance)
    everyone = fit_log_embeddings(log, np.arange(80), 8)
    assert not np.allclose(np.abs(everyone.vectors), np.abs(first.vectors))


def test_embeddings_reproduce_truncated_svd() -> None:
    log = _random_log(50, 40, seed=3)
    matrix = log.to_csr().toarray().astype(np.float64)
    dim = 6
    embeddings = fit_item_embeddings(log.to_csr(), dim)
    left, singular, right_t = np.linalg.svd(matrix, full_matrices=False)
    low_rank = (left[:, :dim] * singular[:dim]) @ right_t[:dim]
    # The prior mean is the mean user vector, so it predicts the column means of the rank-k fit.
    np.testing.assert_allclose(
        embeddings.vectors @ embeddings.prior_mean, low_rank.mean(axis=0), atol=1e-8
    )
    np.testing.assert_allclose(np.mean(np.sum(embeddings.vectors**2, axis=1)), 1.0)
    gram = embeddings.vectors.T @ embeddings.vectors
    assert np.allclose(gram, np.diag(np.diag(gram)))
    precision = embeddings.prior_precision()
    np.testing.assert_allclose(np.trace(precision), dim)


def test_embeddings_reject_too_large_dim() -> None:
    log = _random_log(10, 40, seed=4)
    with pytest.raises(ValueError, match="embedding dim=10 must lie in"):
        fit_item_embeddings(log.to_csr(), 10)
