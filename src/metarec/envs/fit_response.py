"""Fit a response model to a real log: logistic matrix factorisation, then calibration.

The log records which items each user interacted with, not which items they saw.
The fitted model treats every catalog item as examined once by every user, so
the attraction of ``(u, i)`` estimates the probability that ``u`` interacted
with ``i`` in the log. Its mean over the user x item matrix is close to the
density of the log.

Training uses ``negatives`` uniformly drawn non-interacted items per
interaction, which inflates the odds of a click by a factor of roughly
``(non-interacted pairs) / (negatives * interactions)``. The correction is a
weighted Platt scaling on held-out pairs. A random ``calibration_fraction``
of the interactions is left out of training, and their logits and those of
uniformly drawn non-interacted pairs are mapped by ``sigmoid(a * logit + c)``.
Each pair is weighted by the number of pairs of its class in the whole matrix
divided by the number drawn. The fitted ``a`` and ``c`` are folded into the
item factors, item biases and offset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from metarec.data.interactions import InteractionLog
from metarec.envs.response import DEFAULT_POSITION_ETA, ResponseModel, examination_probabilities
from metarec.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairSet:
    """Sorted keys ``user * n_items + item`` of the pairs a model may not treat as negatives."""

    keys: np.ndarray
    n_items: int

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        found = np.searchsorted(self.keys, keys)
        found = np.minimum(found, self.keys.shape[0] - 1)
        return self.keys[found] == keys


def interaction_users(log: InteractionLog) -> np.ndarray:
    """Return the user index of every interaction of the log, in log order."""
    return np.repeat(np.arange(log.n_users, dtype=np.int64), log.user_lengths())


def pair_set(users: np.ndarray, items: np.ndarray, n_items: int) -> PairSet:
    return PairSet(np.unique(users * n_items + items), n_items)


def sample_negatives(
    pairs: PairSet, users: np.ndarray, rng: np.random.Generator, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one uniform item per entry of ``users``, redrawing items in ``pairs`` up to 3 times.

    Entries still in ``pairs`` after the last redraw are dropped.
    """
    items = np.asarray(rng.integers(0, n_items, size=users.shape[0]), dtype=np.int64)
    for _ in range(3):
        clash = pairs.contains(users, items)
        if not clash.any():
            break
        items[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    keep = ~pairs.contains(users, items)
    return users[keep], items[keep]


@dataclass(frozen=True)
class _TrainSettings:
    epochs: int
    negatives: int
    l2: float
    learning_rate: float
    batch_size: int


class _Factorisation(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, log_density: float) -> None:
        super().__init__()
        self.users = torch.nn.Embedding(n_users, dim)
        self.items = torch.nn.Embedding(n_items, dim)
        self.bias = torch.nn.Embedding(n_items, 1)
        self.offset = torch.nn.Parameter(torch.tensor(log_density))
        for table in (self.users, self.items):
            torch.nn.init.normal_(table.weight, std=0.1)
        torch.nn.init.zeros_(self.bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.users(users) * self.items(items)).sum(-1)
        return dot + self.bias(items).squeeze(-1) + self.offset


def fit_response_model(
    log: InteractionLog,
    *,
    dim: int = 32,
    epochs: int = 10,
    seed: int = 0,
    holdout: np.ndarray | None = None,
    negatives: int = 4,
    l2: float = 1e-2,
    learning_rate: float = 0.02,
    batch_size: int = 16384,
    calibration_fraction: float = 0.1,
    position_eta: float = DEFAULT_POSITION_ETA,
) -> ResponseModel:
    """Fit a calibrated logistic factor model to every interaction not in ``holdout``.

    ``holdout`` is a bool array over the log's interactions (``log.items``). The
    pairs it marks are treated as never logged, so they may be drawn as negatives.
    The position bias is ``examination_probabilities(eta=position_eta)``.
    """
    _check_fit_options(log, dim, epochs, negatives, calibration_fraction, holdout)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    users = interaction_users(log)
    visible = np.ones(log.n_interactions, dtype=bool) if holdout is None else ~holdout
    known = pair_set(users[visible], log.items[visible], log.n_items)
    visible_index = np.flatnonzero(visible)
    is_calibration = rng.random(visible_index.shape[0]) < calibration_fraction
    train = visible_index[~is_calibration]
    calibration = visible_index[is_calibration]
    if calibration.size == 0 or train.size == 0:
        raise ConfigError(
            f"log {log.name} has too few interactions ({visible_index.size}) to split "
            f"{calibration_fraction:.0%} off for calibration; fit on a larger log"
        )
    density = visible_index.shape[0] / (log.n_users * log.n_items)
    model = _Factorisation(log.n_users, log.n_items, dim, float(np.log(density / (1 - density))))
    settings = _TrainSettings(epochs, negatives, l2, learning_rate, batch_size)
    _train(model, users[train], log.items[train], known, rng, settings)
    positives = visible_index.shape[0]
    scale, shift = _platt_scaling(
        model, users[calibration], log.items[calibration], known, rng, positives
    )
    logger.info("fitted response model: dim %d, Platt scale %.3f, shift %.3f", dim, scale, shift)
    with torch.no_grad():
        return ResponseModel(
            item_factors=scale * model.items.weight.double().numpy(),
            item_bias=scale * model.bias.weight.double().numpy()[:, 0],
            offset=float(scale * model.offset.item() + shift),
            user_factors=model.users.weight.double().numpy().copy(),
            position_bias=examination_probabilities(eta=position_eta),
        )


def _train(
    model: _Factorisation,
    users: np.ndarray,
    items: np.ndarray,
    known: PairSet,
    rng: np.random.Generator,
    settings: _TrainSettings,
) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    n_items = model.items.num_embeddings
    for epoch in range(settings.epochs):
        # Fresh negatives every epoch: ``negatives`` uniform non-interacted items per positive.
        negative_users, negative_items = sample_negatives(
            known, np.repeat(users, settings.negatives), rng, n_items
        )
        batch_users = torch.from_numpy(np.concatenate([users, negative_users]))
        batch_items = torch.from_numpy(np.concatenate([items, negative_items]))
        labels = torch.cat([torch.ones(users.shape[0]), torch.zeros(negative_users.shape[0])])
        order = torch.from_numpy(rng.permutation(labels.shape[0]))
        total = 0.0
        for start in range(0, order.shape[0], settings.batch_size):
            index = order[start : start + settings.batch_size]
            u, i = batch_users[index], batch_items[index]
            logits = model(u, i)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[index])
            penalty = (model.users(u).pow(2).sum(-1) + model.items(i).pow(2).sum(-1)).mean()
            optimizer.zero_grad()
            (loss + settings.l2 * penalty).backward()
            optimizer.step()
            total += loss.item() * index.shape[0]
        logger.debug("response model epoch %d: loss %.4f", epoch, total / order.shape[0])


def _logits(model: _Factorisation, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(users), torch.from_numpy(items)).double().numpy()


def _platt_scaling(
    model: _Factorisation,
    users: np.ndarray,
    items: np.ndarray,
    known: PairSet,
    rng: np.random.Generator,
    n_positive: int,
    negatives_per_positive: int = 20,
) -> tuple[float, float]:
    n_users, n_items = model.users.num_embeddings, model.items.num_embeddings
    draws = negatives_per_positive * max(users.shape[0], 1)
    negative_users, negative_items = sample_negatives(
        known, rng.integers(0, n_users, size=draws), rng, n_items
    )
    logits = np.concatenate(
        [_logits(model, users, items), _logits(model, negative_users, negative_items)]
    )
    labels = np.concatenate([np.ones(users.shape[0]), np.zeros(negative_users.shape[0])])
    # Each class counts as often as it occurs in the whole user x item matrix.
    n_negative = n_users * n_items - n_positive
    weights = np.concatenate(
        [
            np.full(users.shape[0], n_positive / users.shape[0]),
            np.full(negative_users.shape[0], n_negative / negative_users.shape[0]),
        ]
    )
    weights /= weights.sum()
    return fit_platt(logits, labels, weights)


def fit_platt(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Return ``(a, c)`` minimising the weighted log-loss of ``sigmoid(a * logit + c)``."""

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * logits + params[1]
        # log(1 + exp(z)) - y * z, computed stably.
        value = np.sum(weights * (np.logaddexp(0.0, z) - labels * z))
        residual = weights * (1.0 / (1.0 + np.exp(-z)) - labels)
        return float(value), np.array([np.sum(residual * logits), np.sum(residual)])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def _check_fit_options(
    log: InteractionLog,
    dim: int,
    epochs: int,
    negatives: int,
    calibration_fraction: float,
    holdout: np.ndarray | None,
) -> None:
    for name, value in (("dim", dim), ("epochs", epochs), ("negatives", negatives)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1; got {value}")
    if not 0.0 < calibration_fraction < 1.0:
        raise ConfigError(f"calibration_fraction must lie in (0, 1); got {calibration_fraction}")
    if holdout is not None and np.shape(holdout) != (log.n_interactions,):
        raise ConfigError(
            f"holdout must be a bool array with one entry per interaction "
            f"({log.n_interactions}); got shape {np.shape(holdout)}"
        )
    if log.n_interactions == 0:
        raise ConfigError(f"log {log.name} has no interactions to fit a response model on")


def last_interactions_mask(
    log: InteractionLog, users: np.ndarray, fraction: float = 0.2
) -> np.ndarray:
    """Mark the last ``ceil(fraction * n)`` of the ``n`` interactions of each user with n >= 2."""
    mask = np.zeros(log.n_interactions, dtype=bool)
    for user in np.asarray(users, dtype=np.int64):
        start, end = int(log.indptr[user]), int(log.indptr[user + 1])
        count = end - start
        if count >= 2:
            hidden = min(count - 1, int(np.ceil(fraction * count)))
            mask[end - hidden : end] = True
    return mask


def response_fidelity(
    log: InteractionLog,
    valid_users: np.ndarray,
    *,
    hidden_fraction: float = 0.2,
    negatives: int = 100,
    seed: int = 0,
    **fit_options: object,
) -> dict[str, float]:
    """Measure how well a response model predicts interactions it never saw.

    The last ``hidden_fraction`` of each validation user's interactions are
    hidden from the fit. Each hidden interaction is scored against
    ``negatives`` items drawn uniformly from those the user never interacted
    with. ``auc`` is the mean over hidden interactions of the fraction of its
    negatives scored lower (ties count half). ``log_loss`` weights each
    user's negatives so that together they stand for all of that user's
    non-interacted items, so it is the per-pair log-loss over the user's
    unseen cells. The popularity reference predicts ``p_i`` = the fraction of
    users with a visible interaction on item ``i``.
    """
    holdout = last_interactions_mask(log, valid_users, hidden_fraction)
    if not holdout.any():
        raise ConfigError("no validation user has 2 or more interactions to hide; pass more users")
    model = fit_response_model(log, seed=seed, holdout=holdout, **fit_options)  # type: ignore[arg-type]
    return evaluate_fidelity(model, log, holdout, negatives=negatives, seed=seed)


def evaluate_fidelity(
    model: ResponseModel,
    log: InteractionLog,
    holdout: np.ndarray,
    *,
    negatives: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """Score a model fit without the ``holdout`` interactions on them; see response_fidelity."""
    rng = np.random.default_rng(seed + 1)
    users = interaction_users(log)
    every = pair_set(users, log.items, log.n_items)
    positive_users, positive_items = users[holdout], log.items[holdout]
    negative_users = np.repeat(positive_users, negatives)
    negative_users, negative_items = sample_negatives(every, negative_users, rng, log.n_items)
    visible_counts = np.bincount(log.items[~holdout], minlength=log.n_items)
    popularity = np.clip(visible_counts / log.n_users, 1e-6, 1 - 1e-6)
    weights = _unseen_cell_weights(log, positive_users, negative_users)
    figures: dict[str, float] = {
        "hidden_interactions": float(positive_users.shape[0]),
        "users": float(np.unique(positive_users).shape[0]),
        "negatives_per_interaction": float(negatives),
    }
    model_positive = _pair_probability(model, positive_users, positive_items)
    model_negative = _pair_probability(model, negative_users, negative_items)
    for name, positive, negative in (
        ("model", model_positive, model_negative),
        ("popularity", popularity[positive_items], popularity[negative_items]),
    ):
        figures[f"{name}_auc"] = sampled_auc(positive, negative, positive_users, negative_users)
        figures[f"{name}_log_loss"] = weighted_log_loss(positive, negative, weights)
        figures[f"{name}_mean_probability"] = _weighted_mean(positive, negative, weights)
    figures["observed_rate"] = _weighted_mean(
        np.ones_like(model_positive), np.zeros_like(model_negative), weights
    )
    return figures


def format_fidelity(figures: dict[str, float]) -> str:
    """Return one line with the AUC and log-loss of the model and of the popularity reference."""
    return (
        f"response model AUC {figures['model_auc']:.3f} "
        f"(popularity {figures['popularity_auc']:.3f}), "
        f"log-loss {figures['model_log_loss']:.4f} ({figures['popularity_log_loss']:.4f}) "
        f"on {int(figures['hidden_interactions'])} hidden interactions of "
        f"{int(figures['users'])} users"
    )


def _pair_probability(model: ResponseModel, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    logits = np.einsum("nd,nd->n", model.user_factors[users], model.item_factors[items])
    return np.clip(
        1.0 / (1.0 + np.exp(-(logits + model.item_bias[items] + model.offset))), 1e-12, 1 - 1e-12
    )


def _unseen_cell_weights(
    log: InteractionLog, positive_users: np.ndarray, negative_users: np.ndarray
) -> np.ndarray:
    # Each negative of user u stands for (items u never interacted with) / (negatives drawn for u).
    unseen = log.n_items - np.array(
        [np.unique(log.user_items(u)).shape[0] for u in range(log.n_users)]
    )
    drawn = np.bincount(negative_users, minlength=log.n_users)
    negative_weight = unseen[negative_users] / np.maximum(drawn[negative_users], 1)
    return np.concatenate([np.ones(positive_users.shape[0]), negative_weight])


def sampled_auc(
    positive: np.ndarray,
    negative: np.ndarray,
    positive_users: np.ndarray,
    negative_users: np.ndarray,
) -> float:
    """Return the mean over positives of the share of the same user's negatives scored lower."""
    shares = np.empty(positive.shape[0])
    order = np.argsort(negative_users, kind="stable")
    bounds = np.searchsorted(negative_users[order], np.arange(positive_users.max() + 2))
    for row, (user, score) in enumerate(zip(positive_users, positive, strict=True)):
        own = negative[order[bounds[user] : bounds[user + 1]]]
        if own.size == 0:
            shares[row] = np.nan
            continue
        shares[row] = (np.sum(own < score) + 0.5 * np.sum(own == score)) / own.size
    return float(np.nanmean(shares))


def weighted_log_loss(positive: np.ndarray, negative: np.ndarray, weights: np.ndarray) -> float:
    """Return the weighted mean log-loss of positive (label 1) and negative (label 0) scores."""
    losses = np.concatenate([-np.log(positive), -np.log1p(-negative)])
    return float(np.sum(weights * losses) / np.sum(weights))


def _weighted_mean(positive: np.ndarray, negative: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(weights * np.concatenate([positive, negative])) / np.sum(weights))
