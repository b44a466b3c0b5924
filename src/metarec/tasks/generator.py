"""Task distributions built from a behaviour log and a fitted response model.

Each function returns :class:`~metarec.tasks.task.Task` objects whose ``preference`` lives
in the latent space of the :class:`~metarec.envs.response.ResponseModel` that simulates
the episode:

- ``user_tasks``: one logged user each, with the learned user vector;
- ``segment_tasks``: one k-means cluster of learned user vectors each, at its centroid;
- ``domain_tasks``: one user inside one genre slice of the catalog each;
- ``virtual_tasks``: users sampled from a generative model of the user vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.cluster import KMeans

from metarec.data.interactions import InteractionLog
from metarec.data.items import genre_slices
from metarec.envs.response import ResponseModel
from metarec.tasks.generative import PreferenceGenerator, check_sample_size
from metarec.tasks.task import Task

logger = logging.getLogger(__name__)

Shots = int | tuple[int, int]
"""A history length, or an inclusive ``(low, high)`` range drawn uniformly per task."""


def draw_shots(shots: Shots, rng: np.random.Generator) -> int:
    """Return ``shots`` itself, or a length drawn uniformly from ``low..high`` inclusive."""
    if isinstance(shots, int):
        if shots < 0:
            raise ValueError(f"shots must be >= 0, got {shots}")
        return shots
    low, high = shots
    if not 0 <= low <= high:
        raise ValueError(f"shots range must satisfy 0 <= low <= high, got ({low}, {high})")
    return int(rng.integers(low, high + 1))


def sample_history(
    model: ResponseModel,
    preference: np.ndarray,
    length: int,
    rng: np.random.Generator,
    items: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``length`` distinct items with probability proportional to their attraction.

    Items are drawn one after another without replacement (successive sampling), in the
    order they were drawn. ``items`` restricts the draw to those item indices.
    """
    candidates = np.arange(model.n_items) if items is None else np.asarray(items, dtype=np.int64)
    if length > candidates.shape[0]:
        raise ValueError(
            f"cannot draw a history of {length} distinct items from {candidates.shape[0]} items"
        )
    attraction = model.attraction(np.asarray(preference, dtype=np.float64))[candidates]
    with np.errstate(divide="ignore"):
        log_weights = np.log(attraction)
    # Sorting log-weights plus Gumbel noise gives successive sampling without replacement.
    keys = log_weights + rng.gumbel(size=candidates.shape[0])
    chosen = np.argsort(-keys, kind="stable")[:length]
    return candidates[chosen].astype(np.int64)


def user_tasks(
    log: InteractionLog,
    model: ResponseModel,
    users: np.ndarray,
    shots: Shots,
    rng: np.random.Generator,
) -> list[Task]:
    """Build one task per user, starting from the user's first ``shots`` logged items.

    A user with fewer logged items than the drawn length starts from all of them.
    """
    _check_model_fits_log(model, log)
    tasks = []
    for user in np.asarray(users, dtype=np.int64):
        length = draw_shots(shots, rng)
        tasks.append(
            Task(
                task_id=f"user-{log.user_ids[user]}",
                kind="user",
                preference=model.user_factors[user].copy(),
                history=log.user_items(int(user))[:length].astype(np.int64),
                user=int(user),
            )
        )
    return tasks


def segment_tasks(
    model: ResponseModel,
    users: np.ndarray,
    n_segments: int,
    seed: int,
    history_length: Shots = 5,
) -> tuple[list[Task], np.ndarray]:
    """Cluster users on their learned vectors and build one task per segment.

    k-means (scikit-learn, 10 restarts) groups ``model.user_factors[users]``. Segment
    ``s`` has the centroid as preference and a history drawn by :func:`sample_history`.
    Returns the tasks, ordered by segment, and the segment of each entry of ``users``.
    """
    users = np.asarray(users, dtype=np.int64)
    if not 1 <= n_segments <= users.shape[0]:
        raise ValueError(
            f"n_segments must be between 1 and the number of users ({users.shape[0]}), "
            f"got {n_segments}"
        )
    vectors = model.user_factors[users]
    kmeans = KMeans(n_clusters=n_segments, n_init=10, random_state=seed).fit(vectors)
    labels = kmeans.labels_.astype(np.int64)
    rng = np.random.default_rng(seed)
    tasks = []
    for segment, centroid in enumerate(kmeans.cluster_centers_):
        preference = centroid.astype(np.float64)
        length = draw_shots(history_length, rng)
        tasks.append(
            Task(
                task_id=f"segment-{segment}",
                kind="segment",
                preference=preference,
                history=sample_history(model, preference, length, rng),
            )
        )
    sizes = np.bincount(labels, minlength=n_segments)
    logger.info(
        "Clustered %d users into %d segments of %d to %d users",
        users.shape[0],
        n_segments,
        sizes.min(),
        sizes.max(),
    )
    return tasks, labels


def domain_tasks(
    log: InteractionLog,
    model: ResponseModel,
    users: np.ndarray,
    item_genres: Mapping[str, tuple[str, ...]],
    shots: Shots,
    rng: np.random.Generator,
    *,
    genres: Sequence[str] | None = None,
    min_slice_items: int = 20,
    min_user_items: int = 5,
) -> list[Task]:
    """Build one task per (genre slice, user) pair with enough of the user's items in it.

    ``item_genres`` maps original item ids to genre names (see
    :func:`metarec.data.items.read_item_genres`). A task's ``items`` is the slice and
    its history is the user's first ``shots`` logged items inside the slice. Slices with
    fewer than ``min_slice_items`` items, and users with fewer than ``min_user_items``
    logged items in a slice, are skipped. ``genres`` restricts the slices to those names.
    """
    _check_model_fits_log(model, log)
    slices = _select_slices(genre_slices(log, item_genres), genres, min_slice_items)
    users = np.asarray(users, dtype=np.int64)
    tasks = []
    for genre, members in slices.items():
        for user in users:
            sequence = log.user_items(int(user))
            inside = sequence[np.isin(sequence, members)]
            if inside.shape[0] < min_user_items:
                continue
            length = draw_shots(shots, rng)
            tasks.append(
                Task(
                    task_id=f"domain-{genre}-{log.user_ids[user]}",
                    kind="domain",
                    preference=model.user_factors[user].copy(),
                    history=inside[:length].astype(np.int64),
                    items=members,
                    user=int(user),
                )
            )
    logger.info("Built %d domain tasks over %d genre slices", len(tasks), len(slices))
    return tasks


def virtual_tasks(
    generator: PreferenceGenerator,
    model: ResponseModel,
    n: int,
    shots: Shots,
    rng: np.random.Generator,
) -> list[Task]:
    """Build ``n`` tasks of virtual users whose preferences ``generator`` samples.

    Each history is drawn from the virtual user's own attraction by :func:`sample_history`.
    """
    n = check_sample_size(n)
    preferences = generator.sample(n, seed=int(rng.integers(2**31 - 1)))
    if preferences.shape != (n, model.dim):
        raise ValueError(
            f"generator sampled shape {preferences.shape}, but the response model needs "
            f"({n}, {model.dim}). Fit the generator on this model's user factors"
        )
    tasks = []
    for index, preference in enumerate(preferences):
        length = draw_shots(shots, rng)
        tasks.append(
            Task(
                task_id=f"virtual-{index}",
                kind="virtual",
                preference=preference,
                history=sample_history(model, preference, length, rng),
            )
        )
    return tasks


def _select_slices(
    slices: dict[str, np.ndarray], genres: Sequence[str] | None, min_slice_items: int
) -> dict[str, np.ndarray]:
    if genres is not None:
        unknown = sorted(set(genres) - set(slices))
        if unknown:
            raise ValueError(f"unknown genres {unknown}. The log's items have {sorted(slices)}")
        slices = {genre: slices[genre] for genre in genres}
    small = [genre for genre, members in slices.items() if members.shape[0] < min_slice_items]
    if small:
        logger.info("Skipping genre slices with fewer than %d items: %s", min_slice_items, small)
    return {genre: members for genre, members in slices.items() if genre not in small}


def _check_model_fits_log(model: ResponseModel, log: InteractionLog) -> None:
    if model.user_factors.shape[0] != log.n_users or model.n_items != log.n_items:
        raise ValueError(
            f"response model has {model.user_factors.shape[0]} users and {model.n_items} "
            f"items but the log has {log.n_users} and {log.n_items}. Fit the model on this log"
        )
