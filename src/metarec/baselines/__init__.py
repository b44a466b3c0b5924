"""Non-meta baselines run through the same protocols as the agent."""

from metarec.baselines.ease import EASE
from metarec.baselines.itemknn import ItemKNN
from metarec.baselines.popularity import Popularity

__all__ = ["EASE", "ItemKNN", "Popularity"]
