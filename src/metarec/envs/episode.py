"""Pieces shared by the single and the batched simulated-user environments.

Both environments draw every random number of an episode at reset, in the same
order, from the user's generator. They draw the task (when none is given), one
uniform per (round, position) for examination, one per item for the click and
one per item for the purchase. Position ``j`` of round ``t`` is examined when
``exam[t, j] < position_bias[j]``, and an examined item ``i`` is clicked when
``click[i] < attraction[i]``. The slate checks reject items shown before, so
one click draw per item is enough. Because the draws do not depend on the
slates, two policies facing the same seed and task meet the same user (common
random numbers). The same item at the same step and position gets the same
click outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metarec.envs.response import ResponseModel
from metarec.errors import ConfigError
from metarec.session import FEEDBACK_TYPES
from metarec.tasks.task import Task

PAD_FEEDBACK = FEEDBACK_TYPES


@dataclass(frozen=True)
class EpisodeDraws:
    """Uniform draws of one episode: ``exam`` per (round, position), the others per item."""

    exam: np.ndarray
    click: np.ndarray
    purchase: np.ndarray


def draw_episode(
    rng: np.random.Generator, rounds: int, slate_size: int, n_items: int
) -> EpisodeDraws:
    """Draw the examination, click and purchase uniforms of one episode, in a fixed order."""
    exam = rng.random((rounds, slate_size))
    click = rng.random(n_items)
    purchase = rng.random(n_items)
    return EpisodeDraws(exam, click, purchase)


def allowed_items(task: Task, n_items: int) -> np.ndarray:
    """Return the bool mask of items the task lets the agent recommend."""
    if task.items is None:
        return np.ones(n_items, dtype=bool)
    mask = np.zeros(n_items, dtype=bool)
    mask[np.asarray(task.items, dtype=np.int64)] = True
    return mask


def check_tasks(
    tasks: Sequence[Task], response: ResponseModel, n_items: int, slate_size: int
) -> None:
    """Raise ConfigError when a task does not fit the response model, the catalog or a slate."""
    if len(tasks) == 0:
        raise ConfigError("a simulated environment needs at least one task; got an empty list")
    for task in tasks:
        for name, vector in (("preference", task.preference), ("drift_to", task.drift_to)):
            if vector is not None and np.shape(vector) != (response.dim,):
                raise ConfigError(
                    f"task {task.task_id}: {name} has shape {np.shape(vector)}, but the "
                    f"response model has dim={response.dim}; build tasks from this model"
                )
        for name, items in (("history", task.history), ("items", task.items)):
            if items is None or len(items) == 0:
                continue
            values = np.asarray(items)
            if values.min() < 0 or values.max() >= n_items:
                raise ConfigError(
                    f"task {task.task_id}: {name} contains item indices outside [0, {n_items})"
                )
        free = _free_items(task, n_items)
        if free < slate_size:
            raise ConfigError(
                f"task {task.task_id} leaves {free} items to recommend, "
                f"fewer than slate_size={slate_size}; allow more items or use smaller slates"
            )


def _free_items(task: Task, n_items: int) -> int:
    history = np.asarray(task.history, dtype=np.int64)
    if task.items is None:
        return n_items - int(np.unique(history).shape[0])
    return int(np.setdiff1d(np.asarray(task.items, dtype=np.int64), history).shape[0])


def padded_tokens(
    items: np.ndarray, feedback: np.ndarray, max_tokens: int, n_items: int
) -> dict[str, np.ndarray]:
    """Return the observation of one session: its last ``max_tokens`` tokens, left-aligned.

    Padding uses item ``n_items`` and feedback 3, as in the log-replay environment.
    """
    items = items[-max_tokens:]
    feedback = feedback[-max_tokens:]
    padded_items = np.full(max_tokens, n_items, dtype=np.int64)
    padded_feedback = np.full(max_tokens, PAD_FEEDBACK, dtype=np.int64)
    padded_items[: items.shape[0]] = items
    padded_feedback[: feedback.shape[0]] = feedback
    return {
        "items": padded_items,
        "feedback": padded_feedback,
        "length": np.array(items.shape[0], dtype=np.int64),
    }


def check_settings(slate_size: int, rounds: int, max_tokens: int, patience: int | None) -> None:
    """Raise ConfigError for a non-positive slate size, round count, token count or patience."""
    for name, value in (("slate_size", slate_size), ("rounds", rounds), ("max_tokens", max_tokens)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1; got {value}")
    if patience is not None and patience < 1:
        raise ConfigError(f"patience must be at least 1 or None (never leave); got {patience}")
