"""Model selection on validation: keep the weights of the best-scoring candidate."""

from __future__ import annotations

import copy
import logging

from torch import nn

logger = logging.getLogger(__name__)


class BestWeights:
    """The best validation record seen so far and a copy of the weights that earned it.

    Training stages offer every validated candidate, starting with the
    weights they were given, so a stage that keeps the best never returns a
    policy that validates worse than its input.
    """

    def __init__(self, policy: nn.Module, record: dict[str, float]) -> None:
        self.record = record
        self.state = copy.deepcopy(policy.state_dict())

    def offer(self, policy: nn.Module, record: dict[str, float]) -> bool:
        """Keep ``policy``'s weights if ``record`` scores higher; return whether it did."""
        if record["score"] <= self.record["score"]:
            return False
        self.record = record
        self.state = copy.deepcopy(policy.state_dict())
        return True

    def finish(
        self,
        policy: nn.Module,
        history: list[dict[str, float]],
        keep_best: bool,
        stage: str,
        unit: str,
    ) -> dict[str, float]:
        """Load the best weights into ``policy`` (or keep the last ones) and log the choice.

        Returns the record of the weights left in ``policy``: the best one
        with ``keep_best``, otherwise the last one of ``history``.
        """
        if keep_best:
            policy.load_state_dict(self.state)
            chosen = self.record
        else:
            chosen = history[-1]
        logger.info(
            "%s: kept %s %d (validation score %.4f)",
            stage,
            unit,
            int(chosen[unit]),
            chosen["score"],
        )
        return chosen
