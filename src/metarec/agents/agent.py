"""The meta-RL agent seen through the common recommender interface."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metarec.agents.policy import SlatePolicy
from metarec.agents.tokens import pack_sessions
from metarec.config import AdaptConfig
from metarec.recommender import Recommender
from metarec.session import Session


class MetaRLAgent(Recommender):
    """Scores items with a trained :class:`SlatePolicy` in evaluation mode.

    With ``adapt.steps > 0`` each session first takes that many first-order
    MAML steps on its own support set (see :mod:`metarec.meta.maml`).
    """

    name = "MetaRL"

    def __init__(self, policy: SlatePolicy, adapt: AdaptConfig | None = None) -> None:
        self.policy = policy
        self.adapt = adapt or AdaptConfig()

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        self.policy.eval()
        if self.adapt.steps > 0:
            from metarec.meta.maml import adapted_scores

            return adapted_scores(self.policy, sessions, self.adapt)
        with torch.no_grad():
            batch = pack_sessions(
                sessions, self.policy.n_items, self.policy.config.max_tokens, self.device
            )
            logits, _ = self.policy(batch)
        return logits.float().cpu().numpy()
