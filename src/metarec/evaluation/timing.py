"""Latency of scoring one user's full catalog, as a service would."""

from __future__ import annotations

import time

import numpy as np

from metarec.data.interactions import InteractionLog
from metarec.recommender import Recommender
from metarec.session import Session


def time_single_user_scoring(
    recommender: Recommender,
    log: InteractionLog,
    users: np.ndarray,
    shots: int = 5,
    repeats: int = 200,
) -> float:
    """Return the median milliseconds to score every item for one user from ``shots`` items."""
    histories = [log.user_items(int(u))[:shots] for u in users[: max(1, min(len(users), repeats))]]
    if not histories:
        return float("nan")
    recommender.recommend([Session.from_history(histories[0])], 10)
    durations = []
    for index in range(repeats):
        session = Session.from_history(histories[index % len(histories)])
        started = time.perf_counter()
        recommender.recommend([session], 10)
        durations.append(time.perf_counter() - started)
    return float(np.median(durations) * 1000.0)
