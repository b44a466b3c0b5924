"""A task: one simulated user (or segment, domain or virtual user) the agent adapts to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

TaskKind = Literal["user", "segment", "domain", "virtual", "synthetic"]


@dataclass(frozen=True)
class Task:
    """The ground truth of one episode's user and what the agent is shown first.

    ``preference`` is the user's vector in the response model's latent space
    (see :class:`metarec.envs.response.ResponseModel`); it is never part of the agent's observation.
    ``history`` contains the item indices the episode starts from, as history
    tokens, earliest first. ``items`` restricts the catalog the agent may
    recommend from (a domain task); ``None`` allows every item.
    ``drift_to`` and ``drift_step`` describe a preference shift: from step
    ``drift_step`` on, the preference moves to ``drift_to``, at once when
    ``drift_span`` is 1, or linearly over ``drift_span`` steps.
    """

    task_id: str
    kind: TaskKind
    preference: np.ndarray
    history: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    items: np.ndarray | None = None
    user: int | None = None
    drift_to: np.ndarray | None = None
    drift_step: int | None = None
    drift_span: int = 1

    def preference_at(self, step: int) -> np.ndarray:
        """Return the preference vector in force at episode step ``step`` (0-based)."""
        if self.drift_to is None or self.drift_step is None or step < self.drift_step:
            return self.preference
        weight = min(1.0, (step - self.drift_step + 1) / max(self.drift_span, 1))
        return (1.0 - weight) * self.preference + weight * self.drift_to
