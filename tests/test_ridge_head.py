"""The policy's closed-form ridge head: the solution, token weights, forgetting, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.agents.policy import SlatePolicy
from metarec.agents.ridge import RidgeHead
from metarec.agents.tokens import pack_sessions
from metarec.config import ModelConfig
from metarec.session import Session

N_ITEMS = 12
DIM = 4


def test_ridge_matches_closed_form() -> None:
    torch.manual_seed(0)
    head = RidgeHead(N_ITEMS, DIM)
    with torch.no_grad():
        head.prior.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3]))
        head.log_penalty.fill_(np.log(0.5))
    session = Session.from_history(np.array([1, 4])).with_slate(
        np.array([2, 7, 9]), np.array([True, False, False])
    )
    batch = pack_sessions([session], N_ITEMS, 16, torch.device("cpu"))
    scores = head(batch).detach().numpy()[0]

    features = head.features.weight.detach().numpy()[:-1].astype(np.float64)
    prior = head.prior.detach().numpy().astype(np.float64)
    x = features[[1, 4, 2, 7, 9]]
    y = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    weights = prior + np.linalg.solve(x.T @ x + 0.5 * np.eye(DIM), x.T @ (y - x @ prior))
    np.testing.assert_allclose(scores, features @ weights, rtol=1e-4, atol=1e-5)


def test_ridge_without_tokens_scores_by_prior() -> None:
    head = RidgeHead(N_ITEMS, DIM)
    batch = pack_sessions([Session.from_history(np.zeros(0))], N_ITEMS, 16, torch.device("cpu"))
    expected = head.features.weight[:-1] @ head.prior
    torch.testing.assert_close(head(batch)[0], expected.detach())


def test_skip_lowers_similar_items() -> None:
    torch.manual_seed(1)
    head = RidgeHead(N_ITEMS, DIM)
    history = Session.from_history(np.array([0]))
    skipped = history.with_slate(np.array([3]), np.array([False]))
    clicked = history.with_slate(np.array([3]), np.array([True]))
    batch = pack_sessions([skipped, clicked], N_ITEMS, 16, torch.device("cpu"))
    scores = head(batch).detach()
    features = head.features.weight[:-1].detach()
    neighbour = int(torch.argmax(features[:, :] @ features[3] * (torch.arange(N_ITEMS) != 3)))
    assert scores[1, neighbour] > scores[0, neighbour]


def test_policy_with_ridge_head_round_trips_state() -> None:
    config = ModelConfig(dim=8, layers=1, heads=2, max_tokens=16, ridge_head=True)
    policy = SlatePolicy(N_ITEMS, config)
    assert any(name.startswith("ridge.") for name in policy.state_dict())
    copy = SlatePolicy(N_ITEMS, config)
    copy.load_state_dict(policy.state_dict())
    batch = pack_sessions(
        [Session.from_history(np.array([1, 2]))], N_ITEMS, 16, torch.device("cpu")
    )
    policy.eval()
    copy.eval()
    torch.testing.assert_close(policy(batch)[0], copy(batch)[0])
    plain = SlatePolicy(N_ITEMS, config.model_copy(update={"ridge_head": False}))
    with pytest.raises(RuntimeError, match="ridge"):
        plain.load_state_dict(policy.state_dict())


def _two_slate_session() -> Session:
    """History 1, 4; slate 2, 7, 9 with a click on 2; slate 3, 5, 6 without clicks."""
    return (
        Session.from_history(np.array([1, 4]))
        .with_slate(np.array([2, 7, 9]), np.array([True, False, False]))
        .with_slate(np.array([3, 5, 6]), np.array([False, False, False]))
    )


def test_slate_weights_follow_position_and_age() -> None:
    head = RidgeHead(N_ITEMS, DIM, slate_size=3)
    decay, miss_decay = 0.5, 0.3
    with torch.no_grad():
        head.skip_log_weights.copy_(torch.log(torch.tensor([1.0, 0.5, 0.25])))
        head.raw_decay.fill_(float(np.log(np.expm1(decay))))
        head.raw_miss_decay.fill_(float(np.log(np.expm1(miss_decay))))
        head.log_weights.copy_(torch.log(torch.tensor([2.0, 1.0, 1.0])))
    batch = pack_sessions([_two_slate_session()], N_ITEMS, 16, torch.device("cpu"))
    weights = head.token_weights(batch).detach().numpy()[0]
    # History weighs 2 and is older than both slates; the clicked item keeps weight 1.
    # The newest slate drew no click, so every older token loses a further exp(-0.3).
    old, new = np.exp(-2 * decay - miss_decay), np.exp(-decay - miss_decay)
    expected = [2 * old, 2 * old, new, 0.5 * new, 0.25 * new, 1.0, 0.5, 0.25]
    np.testing.assert_allclose(weights, expected, rtol=1e-5)


def test_clickless_slates_discount_older_tokens() -> None:
    head = RidgeHead(N_ITEMS, DIM, slate_size=2)
    with torch.no_grad():
        head.raw_decay.fill_(-30.0)
        head.raw_miss_decay.fill_(float(np.log(np.expm1(1.0))))
    clicked = np.array([True, False])
    missed = np.array([False, False])
    session = Session.from_history(np.array([1]))
    session = session.with_slate(np.array([2, 3]), missed)
    session = session.with_slate(np.array([4, 5]), clicked)
    session = session.with_slate(np.array([6, 7]), missed)
    session = session.with_slate(np.array([8, 9]), missed)
    batch = pack_sessions([session], N_ITEMS, 16, torch.device("cpu"))
    weights = head.token_weights(batch).detach().numpy()[0]
    # Clickless slates newer than each token: history 3, then 2, 2, 1 and 0 for the slates.
    misses = np.array([3, 2, 2, 2, 2, 1, 1, 0, 0])
    np.testing.assert_allclose(weights, np.exp(-misses), rtol=1e-5)


def test_weighted_ridge_matches_closed_form() -> None:
    torch.manual_seed(2)
    head = RidgeHead(N_ITEMS, DIM, slate_size=3)
    with torch.no_grad():
        head.skip_log_weights.copy_(torch.tensor([0.0, -0.5, -1.0]))
        head.raw_decay.fill_(0.3)
        head.targets.copy_(torch.tensor([0.8, 1.2, -0.1]))
        head.prior.copy_(torch.tensor([0.1, 0.0, -0.1, 0.2]))
    batch = pack_sessions([_two_slate_session()], N_ITEMS, 16, torch.device("cpu"))
    scores = head(batch).detach().numpy()[0].astype(np.float64)

    weights = head.token_weights(batch).detach().numpy()[0].astype(np.float64)
    features = head.features.weight.detach().numpy()[:-1].astype(np.float64)
    prior = head.prior.detach().numpy().astype(np.float64)
    x = features[[1, 4, 2, 7, 9, 3, 5, 6]]
    y = np.array([0.8, 0.8, 1.2, -0.1, -0.1, -0.1, -0.1, -0.1])
    gram = x.T @ (weights[:, None] * x) + np.eye(DIM)
    solution = prior + np.linalg.solve(gram, x.T @ (weights * (y - x @ prior)))
    np.testing.assert_allclose(scores, features @ solution, rtol=1e-4, atol=1e-5)


def test_decay_lets_recent_clicks_win() -> None:
    """An old click on item 0 and a new click on item 5: forgetting ranks 5's twin higher."""
    features = np.zeros((N_ITEMS, DIM))
    features[[0, 1], 0] = 1.0  # items 0 and 1 share one direction
    features[[5, 6], 1] = 1.0  # items 5 and 6 share another
    features[[2, 3, 4, 7, 8, 9, 10, 11], 2] = 1.0
    session = (
        Session.from_history(np.zeros(0, dtype=np.int64))
        .with_slate(np.array([0, 2]), np.array([True, False]))
        .with_slate(np.array([0 + 3, 4]), np.array([False, False]))
        .with_slate(np.array([5, 7]), np.array([True, False]))
    )
    batch = pack_sessions([session], N_ITEMS, 16, torch.device("cpu"))
    ranked = {}
    for decay in (1e-4, 2.0):
        head = RidgeHead(N_ITEMS, DIM, slate_size=2)
        head.initialise(features, np.zeros(DIM), penalty=0.1, scale=1.0)
        with torch.no_grad():
            head.raw_decay.fill_(float(np.log(np.expm1(decay))))
        scores = head(batch).detach().numpy()[0]
        ranked[decay] = scores[6] - scores[1]
    assert ranked[1e-4] == pytest.approx(0.0, abs=0.05)
    assert ranked[2.0] > 0.3
