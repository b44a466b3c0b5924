"""Stage 3 (optional): first-order MAML on the policy's read-out layer with ``torch.func``.

Only the read-out parameters adapt per user (``head`` and ``output_bias``):
the encoder's user state is computed once, and a few gradient steps fit the
read-out to the user's own support set. The inner task is leave-one-out: each
support item is predicted from the others. Meta-training is first order: the
query-set gradient at the adapted parameters updates the shared ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import grad

from metarec.agents.policy import SlatePolicy
from metarec.agents.tokens import pack_sessions, shown_mask
from metarec.config import AdaptConfig
from metarec.meta.losses import next_items_loss, target_matrix
from metarec.meta.sampling import SessionSampler
from metarec.progress import Reporter
from metarec.session import Session

logger = logging.getLogger(__name__)

Params = dict[str, torch.Tensor]


def readout_params(policy: SlatePolicy) -> Params:
    return {
        "head.weight": policy.head.weight,
        "head.bias": policy.head.bias,
        "output_bias": policy.output_bias,
    }


def readout_logits(params: Params, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Return item logits from user states with the given read-out parameters."""
    hidden = states @ params["head.weight"].T + params["head.bias"]
    return hidden @ items.T + params["output_bias"]


def _readout_loss(
    params: Params,
    states: torch.Tensor,
    items: torch.Tensor,
    targets: torch.Tensor,
    shown_items: torch.Tensor,
) -> torch.Tensor:
    return next_items_loss(readout_logits(params, states, items), targets, shown_items)


def _leave_one_out(session: Session) -> tuple[list[Session], list[np.ndarray]]:
    """Return sessions that each lack one chosen item, with that item as the target."""
    positives = np.flatnonzero(session.feedback != 2)
    sessions, targets = [], []
    for position in positives:
        keep = np.arange(len(session)) != position
        sessions.append(Session(session.items[keep], session.feedback[keep]))
        targets.append(session.items[position : position + 1])
    return sessions, targets


def adapt_readout(policy: SlatePolicy, session: Session, steps: int, lr: float) -> Params:
    """Return read-out parameters after ``steps`` gradient steps on the session's support set.

    A session with fewer than two chosen items has nothing to learn from and
    keeps the shared parameters.
    """
    params = {name: value.detach() for name, value in readout_params(policy).items()}
    sessions, targets = _leave_one_out(session)
    if len(sessions) < 2 or steps == 0:
        return params
    device = policy.output_bias.device
    items = policy.output_embedding.weight.detach()
    with torch.no_grad():
        states = policy.encode(
            pack_sessions(sessions, policy.n_items, policy.config.max_tokens, device)
        )
    target = target_matrix(targets, policy.n_items, device)
    shown_items = shown_mask(sessions, policy.n_items, device)
    loss_grad = grad(_readout_loss)
    for _ in range(steps):
        grads = loss_grad(params, states, items, target, shown_items)
        params = {name: params[name] - lr * grads[name] for name in params}
    return params


def adapted_scores(
    policy: SlatePolicy, sessions: Sequence[Session], config: AdaptConfig
) -> np.ndarray:
    """Score items for each session with its own adapted read-out."""
    device = policy.output_bias.device
    items = policy.output_embedding.weight.detach()
    with torch.no_grad():
        states = policy.encode(
            pack_sessions(sessions, policy.n_items, policy.config.max_tokens, device)
        )
    rows = []
    for row, session in enumerate(sessions):
        params = adapt_readout(policy, session, config.steps, config.lr)
        with torch.no_grad():
            rows.append(readout_logits(params, states[row : row + 1], items))
    return torch.cat(rows).float().cpu().numpy()


def fomaml(
    policy: SlatePolicy,
    sampler: SessionSampler,
    config: AdaptConfig,
    lr: float,
    validate: Callable[[SlatePolicy], dict[str, float]],
    rng: np.random.Generator,
    reporter: Reporter,
) -> list[dict[str, float]]:
    """Meta-train the shared weights so that a few read-out steps help most on the query set."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    history = []
    reporter.start("maml", config.meta_iterations)
    for iteration in range(1, config.meta_iterations + 1):
        policy.train()
        samples = [
            sampler.sample(int(u), rng) for u in rng.choice(sampler.users, config.batch_size)
        ]
        losses = []
        for sample in samples:
            adapted = adapt_readout(policy, sample.session, config.steps, config.lr)
            # First order: the adapted values carry the shared parameters' gradient unchanged.
            shared = readout_params(policy)
            first_order = {
                name: shared[name] + (adapted[name] - shared[name]).detach() for name in shared
            }
            losses.append(_query_loss(policy, first_order, sample.session, sample.targets))
        loss = torch.stack(losses).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
        optimizer.step()
        reporter.advance("maml", loss=float(loss.detach()))
        history.append({"iteration": float(iteration), "query_loss": float(loss.detach())})
    reporter.finish("maml")
    history.append({"iteration": float(config.meta_iterations), **validate(policy)})
    return history


def _query_loss(
    policy: SlatePolicy, params: Params, session: Session, targets: np.ndarray
) -> torch.Tensor:
    device = policy.output_bias.device
    batch = pack_sessions([session], policy.n_items, policy.config.max_tokens, device)
    states = policy.encode(batch)
    items = policy.output_embedding.weight
    logits = readout_logits(params, states, items)
    target = target_matrix([targets], policy.n_items, device)
    return next_items_loss(logits, target, shown_mask([session], policy.n_items, device))
