"""Task distributions for meta-training: users, segments, domains and virtual users."""

from metarec.tasks.task import Task

__all__ = ["Task"]
