"""The fewshot-v1 and interactive-v1 evaluation protocols.

Both protocols cut each held-out user chronologically: the first K
interactions are the support set (the input of the recommender) and all
the rest is the query set (what counts as relevant). Every item of the
catalog except the ones already shown is ranked: no negative sampling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from metarec.data.interactions import InteractionLog
from metarec.data.splits import FewShotTask, fewshot_tasks
from metarec.envs.replay import run_interactive_episodes
from metarec.errors import ConfigError
from metarec.evaluation.metrics import ranking_metrics
from metarec.recommender import Recommender
from metarec.session import Session

logger = logging.getLogger(__name__)

EVAL_BATCH = 256


@dataclass
class FewShotResult:
    """Metrics of one recommender at one support size K."""

    shots: int
    users: int
    skipped_users: int
    metrics: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    rankings: dict[int, np.ndarray] = field(repr=False, default_factory=dict)


@dataclass
class InteractiveResult:
    """Metrics of one recommender in interactive-v1."""

    users: int
    skipped_users: int
    recall: float
    clicks_per_round: list[float]
    per_user_recall: np.ndarray = field(repr=False)


def evaluate_fewshot(
    recommender: Recommender,
    log: InteractionLog,
    users: np.ndarray,
    shots: int,
    keep_items: int = 0,
) -> FewShotResult:
    """Score ``recommender`` under fewshot-v1 at support size ``shots``.

    ``keep_items`` > 0 also returns the best ``keep_items`` items per user,
    keyed by user index, for the recommendation files.
    """
    tasks = fewshot_tasks(log, users, shots)
    skipped = len(users) - len(tasks)
    if skipped:
        logger.info("fewshot K=%d: skipped %d users with no query items", shots, skipped)
    depth = max(20, keep_items)
    ranked = _rank_tasks(recommender, tasks, depth)
    per_user = ranking_metrics(ranked, [task.query for task in tasks]) if tasks else {}
    metrics = {name: float(values.mean()) for name, values in per_user.items()}
    rankings = {}
    if keep_items:
        rankings = {task.user: ranked[row, :keep_items] for row, task in enumerate(tasks)}
    return FewShotResult(shots, len(tasks), skipped, metrics, per_user, rankings)


def _rank_tasks(recommender: Recommender, tasks: list[FewShotTask], depth: int) -> np.ndarray:
    chunks = []
    for start in range(0, len(tasks), EVAL_BATCH):
        batch = tasks[start : start + EVAL_BATCH]
        sessions = [Session.from_history(task.support) for task in batch]
        chunks.append(recommender.recommend(sessions, depth))
    if not chunks:
        return np.zeros((0, depth), dtype=np.int64)
    return np.concatenate(chunks)


def evaluate_interactive(
    recommender: Recommender,
    log: InteractionLog,
    users: np.ndarray,
    shots: int = 5,
    rounds: int = 10,
    slate_size: int = 10,
) -> InteractiveResult:
    """Score ``recommender`` under interactive-v1.

    Each user starts from the first ``shots`` interactions. For ``rounds``
    rounds the recommender shows ``slate_size`` unseen items. The ones in the
    query set are clicks, and the recommender observes clicks and skips before
    the next round. Interactive recall is total clicks / ``min(|query|, rounds * slate_size)``.
    """
    tasks = fewshot_tasks(log, users, shots)
    skipped = len(users) - len(tasks)
    if skipped:
        logger.info("interactive: skipped %d users with no query items", skipped)
    if not tasks:
        return InteractiveResult(0, skipped, 0.0, [0.0] * rounds, np.zeros(0))
    if shots + rounds * slate_size > log.n_items:
        raise ConfigError(
            f"interactive-v1 shows {shots} + {rounds} x {slate_size} items per user but the "
            f"catalog contains only {log.n_items}; lower protocol.rounds or protocol.slate_size"
        )
    clicks = run_interactive_episodes(recommender, log, tasks, rounds, slate_size)
    sizes = np.array([task.query.shape[0] for task in tasks])
    per_user_recall = clicks.sum(axis=1) / np.minimum(sizes, rounds * slate_size)
    return InteractiveResult(
        users=len(tasks),
        skipped_users=skipped,
        recall=float(per_user_recall.mean()),
        clicks_per_round=[float(value) for value in clicks.mean(axis=0)],
        per_user_recall=per_user_recall,
    )
