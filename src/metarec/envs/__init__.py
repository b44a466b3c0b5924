"""Gymnasium environments in which a recommender is an agent and a user is a task."""

from metarec.envs.replay import LoggedUserEnv
from metarec.envs.response import ResponseModel
from metarec.envs.rewards import RewardModel
from metarec.envs.simulated import SimulatedUserEnv

__all__ = ["LoggedUserEnv", "ResponseModel", "RewardModel", "SimulatedUserEnv"]
