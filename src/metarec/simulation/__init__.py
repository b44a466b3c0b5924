"""Policies, episode runners and experiments in simulated environments."""
