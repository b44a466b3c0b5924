"""Slate policies for simulated users: any Recommender, the oracle and uniform random.

A policy acts on a batch of environments at once and returns one slate per
environment. It may read each environment's ``session`` and
``allowed_mask()``; only oracles may read ``item_values()`` or
``attraction()``, which reveal the hidden preference.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from metarec.envs.simulated import SimulatedUserEnv
from metarec.recommender import Recommender, top_k


class SimulationPolicy(Protocol):
    """Anything that picks one slate per simulated user."""

    name: str

    def act(self, envs: Sequence[SimulatedUserEnv]) -> np.ndarray:
        """Return a ``(len(envs), slate_size)`` int64 array of item indices."""
        ...


def _allowed(envs: Sequence[SimulatedUserEnv]) -> np.ndarray:
    return np.stack([env.allowed_mask() for env in envs])


class RecommenderPolicy:
    """Shows the best-scored allowed items of a metarec Recommender, best first."""

    def __init__(self, recommender: Recommender, name: str | None = None) -> None:
        self.recommender = recommender
        self.name = name or recommender.name

    def act(self, envs: Sequence[SimulatedUserEnv]) -> np.ndarray:
        scores = np.asarray(self.recommender.score([env.session for env in envs]), np.float64)
        scores[~_allowed(envs)] = -np.inf
        return top_k(scores, envs[0].slate_size)


class OraclePolicy:
    """Shows the slate of highest expected reward at the current step.

    Items are ranked by their true expected reward if examined
    (``env.item_values()``) and assigned to positions in decreasing order of
    examination probability, which maximises the expected reward of this
    slate. It is myopic: it does not plan for later rounds, so with a
    position bias it is not always optimal over a whole episode (see
    :mod:`metarec.simulation.exact`).
    """

    name = "oracle"

    def act(self, envs: Sequence[SimulatedUserEnv]) -> np.ndarray:
        values = np.stack([env.item_values() for env in envs])
        return oracle_slates(values, _allowed(envs), envs[0].examination)


def oracle_slates(values: np.ndarray, allowed: np.ndarray, examination: np.ndarray) -> np.ndarray:
    """Return per row the allowed items of highest ``values``, best at the most examined position.

    Ties go to the lower item index, as in :func:`metarec.recommender.top_k`.
    """
    values = np.where(allowed, values, -np.inf)
    best = top_k(values, examination.shape[0])
    positions = np.argsort(-examination, kind="stable")
    slates = np.empty_like(best)
    slates[:, positions] = best
    return slates


class RandomPolicy:
    """Shows allowed items drawn uniformly without replacement.

    The draws for one environment depend only on ``seed``, the task index and
    the session so far, so results do not depend on how episodes are batched.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def act(self, envs: Sequence[SimulatedUserEnv]) -> np.ndarray:
        keys = np.stack([self._generator(env).random(env.n_items) for env in envs])
        keys[~_allowed(envs)] = -np.inf
        return top_k(keys, envs[0].slate_size)

    def _generator(self, env: SimulatedUserEnv) -> np.random.Generator:
        session = env.session
        fingerprint = zlib.crc32(session.items.tobytes() + session.feedback.tobytes())
        return np.random.default_rng([self.seed, env.task_index, env.step_index, fingerprint])
