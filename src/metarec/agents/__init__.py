"""Neural policies that read a user's tokens and score every item."""

from metarec.agents.agent import MetaRLAgent
from metarec.agents.policy import SlatePolicy

__all__ = ["MetaRLAgent", "SlatePolicy"]
