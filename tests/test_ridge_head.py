"""The policy's closed-form ridge head: the solution, its use of feedback, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.agents.policy import RidgeHead, SlatePolicy
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
