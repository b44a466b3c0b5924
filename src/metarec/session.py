"""The input of a recommender for one user: a chronological list of feedback tokens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HISTORY = 0
"""Feedback type of an interaction from the user's log (a rated or consumed item)."""
CLICK = 1
"""Feedback type of a shown item the user clicked."""
SKIP = 2
"""Feedback type of a shown item the user did not click."""
FEEDBACK_TYPES = 3


@dataclass(frozen=True)
class Session:
    """Tokens of one user, earliest first: ``items[t]`` received feedback ``feedback[t]``."""

    items: np.ndarray
    feedback: np.ndarray

    @classmethod
    def from_history(cls, history: np.ndarray) -> Session:
        items = np.asarray(history, dtype=np.int64)
        return cls(items, np.full(items.shape[0], HISTORY, dtype=np.int64))

    def with_slate(self, slate: np.ndarray, clicked: np.ndarray) -> Session:
        """Return a new session that also contains one shown slate and its clicks."""
        slate = np.asarray(slate, dtype=np.int64)
        feedback = np.where(np.asarray(clicked, dtype=bool), CLICK, SKIP).astype(np.int64)
        return Session(
            np.concatenate([self.items, slate]), np.concatenate([self.feedback, feedback])
        )

    def positives(self) -> np.ndarray:
        """Return the items the user chose: history and clicks, without skips."""
        return self.items[self.feedback != SKIP]

    def shown(self) -> np.ndarray:
        """Return every item of the session; none of them should be recommended again."""
        return self.items

    def __len__(self) -> int:
        return int(self.items.shape[0])
