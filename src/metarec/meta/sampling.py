"""Draw training sessions and their target items from training users' histories."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from metarec.data.interactions import InteractionLog
from metarec.session import Session


@dataclass
class SupervisedSample:
    """A session and the items the user chose that it does not yet hold."""

    session: Session
    targets: np.ndarray


class SessionSampler:
    """Draws support sets from training users, optionally followed by simulated slates.

    A share ``1 - subset_fraction`` of the support sets are a user's first K
    interactions, the cut used at evaluation. The others are K interactions
    drawn at random from the whole history and kept in time order. They stop
    the policy from memorising one support set per training user. The targets are all of
    the user's items that the session does not hold.
    With probability ``feedback_fraction`` the session also carries 1 to
    ``rounds`` slates: clicked items are drawn from the targets, skipped items
    from the rest of the catalog in proportion to popularity, as a popularity
    biased recommender would show them. This teaches the policy what clicks and
    skips mean before meta-RL refines it on its own slates.
    """

    def __init__(
        self,
        log: InteractionLog,
        users: np.ndarray,
        item_counts: np.ndarray,
        max_shots: int,
        feedback_fraction: float,
        rounds: int,
        slate_size: int,
        subset_fraction: float = 0.5,
        neighbors: np.ndarray | None = None,
    ) -> None:
        self.log = log
        self.users = users[log.user_lengths()[users] > 1]
        if self.users.size == 0:
            raise ValueError("no training user has two or more interactions")
        self.max_shots = max_shots
        self.subset_fraction = subset_fraction
        self.neighbors = neighbors
        self.feedback_fraction = feedback_fraction
        self.rounds = rounds
        self.slate_size = slate_size
        weights = item_counts.astype(np.float64) + 1.0
        self.item_probabilities = weights / weights.sum()

    def epoch_users(self, samples_per_user: int, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(np.repeat(self.users, samples_per_user))

    def sample(self, user: int, rng: np.random.Generator) -> SupervisedSample:
        sequence = self.log.user_items(user)
        shots = int(rng.integers(1, min(self.max_shots, sequence.shape[0] - 1) + 1))
        if rng.random() < self.subset_fraction:
            picked = np.sort(rng.choice(sequence.shape[0], size=shots, replace=False))
            support = sequence[picked]
        else:
            support = sequence[:shots]
        session = Session.from_history(support)
        if rng.random() < self.feedback_fraction:
            session = self._add_slates(session, sequence, rng)
        targets = np.setdiff1d(sequence, session.items, assume_unique=False)
        return SupervisedSample(session, targets)

    def _add_slates(
        self, session: Session, sequence: np.ndarray, rng: np.random.Generator
    ) -> Session:
        click_rate = rng.uniform(0.0, 0.6)
        for _ in range(int(rng.integers(1, self.rounds + 1))):
            remaining = np.setdiff1d(sequence, session.items)
            if remaining.size <= 1:
                break
            clicks = min(int(rng.binomial(self.slate_size, click_rate)), remaining.size - 1)
            clicked = rng.choice(remaining, size=clicks, replace=False)
            skipped = self._draw_skips(sequence, session, self.slate_size - clicks, rng)
            slate = np.concatenate([clicked, skipped])
            is_click = np.arange(slate.size) < clicks
            order = rng.permutation(slate.size)
            session = session.with_slate(slate[order], is_click[order])
        return session

    def _draw_skips(
        self, sequence: np.ndarray, session: Session, count: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw items the user did not choose: half popular items, half neighbours of the session.

        A recommender shows popular items and items close to what the user
        chose, so those are the items a real user skips.
        """
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        size = 4 * count + 8
        draws = rng.choice(self.item_probabilities.size, size=size, p=self.item_probabilities)
        if self.neighbors is not None:
            anchors = rng.choice(session.positives(), size=size)
            columns = rng.integers(0, self.neighbors.shape[1], size=size)
            close = self.neighbors[anchors, columns]
            draws = np.where(rng.random(size) < 0.5, close, draws)
        draws = draws[~np.isin(draws, sequence) & ~np.isin(draws, session.items)]
        _, first = np.unique(draws, return_index=True)
        return draws[np.sort(first)][:count].astype(np.int64)


def item_neighbors(train_matrix: sp.csr_matrix, count: int = 50) -> np.ndarray:
    """Return the ``count`` items with the highest cosine similarity to each item, any order."""
    matrix = sp.csr_matrix(train_matrix, dtype=np.float32)
    cooccurrence = np.asarray((matrix.T @ matrix).todense(), dtype=np.float32)
    norms = np.sqrt(np.diag(cooccurrence)).clip(min=1.0)
    similarity = cooccurrence / norms[:, None] / norms[None, :]
    np.fill_diagonal(similarity, -1.0)
    count = min(count, similarity.shape[0] - 1)
    return np.argpartition(-similarity, count - 1, axis=1)[:, :count].astype(np.int64)
