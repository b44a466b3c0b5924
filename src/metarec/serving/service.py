"""The service state shared by all routes: model, event store, sessions and metrics."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metarec.serving.batching import RecommendationBatcher, rank_batch
from metarec.serving.metrics import ServiceMetrics
from metarec.serving.models import ModelHolder, ModelSnapshot, load_snapshot
from metarec.serving.sessions import UserSessions
from metarec.serving.settings import ServiceSettings
from metarec.serving.store import EventStore, InsertResult, StoredEvent
from metarec.session import Session

logger = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything the routes share; writes go through :meth:`commit` and :meth:`erase_user`."""

    settings: ServiceSettings
    models: ModelHolder
    store: EventStore
    sessions: UserSessions
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    batcher: RecommendationBatcher = field(default_factory=RecommendationBatcher)
    # Serialises commit and session update, so the in-memory order equals the store's order.
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, settings: ServiceSettings) -> Service:
        """Load the checkpoint, open the store and rebuild every user's session from it."""
        models = ModelHolder(load_snapshot(settings.run_dir))
        store = EventStore(settings.db_url)
        batcher = RecommendationBatcher(settings.max_scoring_batch, settings.max_batch_wait_s)
        sessions = UserSessions(settings.rating_threshold)
        service = cls(settings, models, store, sessions, batcher=batcher)
        service.rebuild_sessions()
        snapshot = models.current
        service.metrics.set_model(snapshot.version, snapshot.dataset)
        return service

    def rebuild_sessions(self) -> None:
        started = time.perf_counter()
        count = 0
        batch: list[StoredEvent] = []
        for stored in self.store.iter_events():
            batch.append(stored)
            if len(batch) == 10_000:
                self.sessions.apply(batch)
                count += len(batch)
                batch = []
        self.sessions.apply(batch)
        count += len(batch)
        logger.info(
            "rebuilt %d user sessions from %d events in %.2f s",
            len(self.sessions),
            count,
            time.perf_counter() - started,
        )

    def commit(self, events: list[StoredEvent]) -> InsertResult:
        """Commit events to the store, then add the new ones to the users' sessions."""
        with self.write_lock:
            result = self.store.insert(events)
            self.sessions.apply(result.inserted)
        self.metrics.events_stored.inc(len(result.inserted))
        return result

    def erase_user(self, user_id: str) -> int:
        with self.write_lock:
            deleted = self.store.delete_user(user_id)
            self.sessions.forget(user_id)
        logger.info("erased user %r: %d events", user_id, deleted)
        return deleted

    def reload(self, run_dir: str | None) -> ModelSnapshot:
        snapshot = self.models.reload(None if run_dir is None else Path(run_dir))
        self.metrics.set_model(snapshot.version, snapshot.dataset)
        return snapshot


def rank_items(
    snapshot: ModelSnapshot, session: Session, k: int, exclude: np.ndarray
) -> list[tuple[int, float]]:
    """Return up to ``k`` (item index, score) pairs, best first, for one session.

    Items of the session and of ``exclude`` are left out, as
    :meth:`metarec.recommender.Recommender.recommend` leaves out shown items.
    """
    return rank_batch(snapshot, [session], [k], [exclude])[0]
