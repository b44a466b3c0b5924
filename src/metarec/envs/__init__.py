"""Gymnasium environments in which a recommender is an agent and a user is a task."""

from metarec.envs.replay import LoggedUserEnv

__all__ = ["LoggedUserEnv"]
