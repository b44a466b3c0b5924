"""Synthetic users that need no data: topic items, quality biases and known preferences.

Each item has a sparse topic vector ``t_i`` drawn from Dirichlet(``item_concentration``)
and a quality bias ``q_i`` drawn from Normal(0, ``quality_scale``). Each user
has a topic preference ``p_u`` drawn from Dirichlet(``user_concentration``) and
the attraction ``sigmoid(strength * p_u . t_i + q_i + offset)``. In the terms
of :class:`ResponseModel` the user's preference vector is ``strength * p_u``
and the item factors are ``t_i``. The parameters are known, so the best slate
of every user at every step is known too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from metarec.data.interactions import InteractionLog
from metarec.envs.response import ResponseModel, examination_probabilities
from metarec.errors import ConfigError
from metarec.tasks.task import Task

DriftKind = Literal["none", "sudden", "gradual"]


@dataclass(frozen=True)
class SyntheticWorld:
    """A synthetic response model, one task per user, and the log of those users' histories.

    ``log.user_items(u)`` contains ``log_length`` interactions of user ``u`` and
    ``tasks[u].history`` its first ``history_length`` of them.
    """

    response: ResponseModel
    tasks: list[Task]
    log: InteractionLog
    topics: np.ndarray


def make_synthetic_world(
    n_users: int,
    n_items: int,
    n_topics: int,
    seed: int,
    *,
    history_length: int = 5,
    log_length: int = 20,
    item_concentration: float = 0.1,
    user_concentration: float = 0.1,
    strength: float = 12.0,
    quality_scale: float = 0.5,
    offset: float = -4.0,
    position_eta: float = 1.0,
    drift: DriftKind = "none",
    drift_step: int = 5,
    drift_span: int = 5,
) -> SyntheticWorld:
    """Draw a synthetic world; the same arguments always give the same world.

    ``drift="sudden"`` switches every user to a new preference (a fresh
    Dirichlet draw) at step ``drift_step``; ``drift="gradual"`` moves there
    linearly over ``drift_span`` steps starting at ``drift_step``.
    Histories are drawn without replacement with probabilities proportional
    to the user's attraction at step 0.
    """
    _check_world(n_users, n_items, n_topics, history_length, log_length, drift)
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(n_topics, item_concentration), size=n_items)
    quality = rng.normal(0.0, quality_scale, size=n_items)
    preferences = strength * rng.dirichlet(np.full(n_topics, user_concentration), size=n_users)
    response = ResponseModel(
        item_factors=topics,
        item_bias=quality,
        offset=offset,
        user_factors=preferences,
        position_bias=examination_probabilities(eta=position_eta),
    )
    histories = _draw_histories(rng, response.attraction(preferences), log_length)
    drift_targets = None
    if drift != "none":
        drift_targets = strength * rng.dirichlet(np.full(n_topics, user_concentration), n_users)
    tasks = []
    for user in range(n_users):
        tasks.append(
            Task(
                task_id=f"synthetic-{seed}-{user}",
                kind="synthetic",
                preference=preferences[user],
                history=histories[user, :history_length].copy(),
                user=user,
                drift_to=None if drift_targets is None else drift_targets[user],
                drift_step=None if drift_targets is None else drift_step,
                drift_span=1 if drift == "sudden" else drift_span,
            )
        )
    log = InteractionLog(
        user_ids=tuple(f"s{user}" for user in range(n_users)),
        item_ids=tuple(f"t{item}" for item in range(n_items)),
        indptr=np.arange(0, (n_users + 1) * log_length, log_length, dtype=np.int64),
        items=histories.reshape(-1).astype(np.int64),
        name=f"synthetic-{seed}",
    )
    return SyntheticWorld(response, tasks, log, topics)


def _draw_histories(rng: np.random.Generator, attraction: np.ndarray, length: int) -> np.ndarray:
    # Gumbel top-k draws ``length`` items without replacement, proportional to attraction.
    gumbel = -np.log(-np.log(rng.random(attraction.shape)))
    keys = np.log(attraction) + gumbel
    return np.argsort(-keys, axis=1, kind="stable")[:, :length]


def _check_world(
    n_users: int,
    n_items: int,
    n_topics: int,
    history_length: int,
    log_length: int,
    drift: str,
) -> None:
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_topics", n_topics)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1; got {value}")
    if not 0 <= history_length <= log_length:
        raise ConfigError(
            f"history_length={history_length} must lie in [0, log_length={log_length}]"
        )
    if log_length >= n_items:
        raise ConfigError(
            f"log_length={log_length} must be smaller than n_items={n_items}, so that "
            "every user has items left to recommend"
        )
    if drift not in ("none", "sudden", "gradual"):
        raise ConfigError(f"drift must be 'none', 'sudden' or 'gradual'; got {drift!r}")
