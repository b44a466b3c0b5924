"""Validation score used for every model-selection decision (baselines and agent alike)."""

from __future__ import annotations

import numpy as np

from metarec.config import ProtocolConfig
from metarec.data.interactions import InteractionLog
from metarec.evaluation.protocols import evaluate_fewshot, evaluate_interactive
from metarec.recommender import Recommender


def validation_score(
    recommender: Recommender,
    log: InteractionLog,
    users: np.ndarray,
    protocol: ProtocolConfig,
) -> dict[str, float]:
    """Return fewshot NDCG@10 at the headline K, interactive recall, and their mean as ``score``.

    Only validation users should be passed here: test users never steer a choice.
    """
    fewshot = evaluate_fewshot(recommender, log, users, protocol.headline_shots)
    interactive = evaluate_interactive(
        recommender, log, users, protocol.interactive_shots, protocol.rounds, protocol.slate_size
    )
    ndcg = fewshot.metrics.get("ndcg@10", 0.0)
    return {
        "ndcg@10": ndcg,
        "interactive_recall": interactive.recall,
        "score": 0.5 * (ndcg + interactive.recall),
    }
