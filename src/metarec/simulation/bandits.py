"""Linear contextual bandits that rebuild each user's state from the session alone.

Every item ``i`` has a fixed vector ``x_i`` (see :mod:`metarec.simulation.embeddings`)
and a user's expected reward for it is modelled as ``theta . x_i``. A session's
history items and clicks are observations with reward 1 and its skips are
observations with reward 0, so the regularised least-squares statistics are

    A = Lambda_0 + sum_t x_t x_t^T,    b = Lambda_0 mu_0 + sum_t r_t x_t,    mu = A^-1 b.

``mu_0`` is the mean of the training users' vectors, so a new user starts
from the population. Because the state is a function of the session, the same
object serves the interactive protocol, the simulators and a service, and
scoring a batch of sessions solves one ``dim x dim`` system per session with
batched linear algebra.

Randomised choices (exploration coins, posterior samples) are drawn from a
generator seeded by the recommender's ``seed`` and the session's tokens. The
same seed therefore gives the same slates for the same sessions, whatever the
batch they are scored in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from metarec.envs.simulated import SimulatedUserEnv
from metarec.recommender import Recommender
from metarec.session import SKIP, Session
from metarec.simulation.embeddings import ItemEmbeddings

# Sessions per chunk of the LinUCB width computation, which allocates a
# (chunk, n_items, dim) array.
_WIDTH_CHUNK = 16


class LinearBandit(Recommender):
    """Base class: the ridge posterior of each session's user vector.

    Subclasses choose the prior precision ``Lambda_0`` and turn the posterior
    into item scores.
    """

    name = "LinearBandit"

    def __init__(self, embeddings: ItemEmbeddings, prior_precision: np.ndarray, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative; got {seed}")
        self.embeddings = embeddings
        self.seed = seed
        self._prior_precision = prior_precision
        self._prior_shift = prior_precision @ embeddings.prior_mean
        # A zero row at index n_items lets padded token slots contribute nothing.
        self._padded_vectors = np.vstack([embeddings.vectors, np.zeros((1, embeddings.dim))])

    @property
    def n_items(self) -> int:
        return self.embeddings.n_items

    def posterior(self, sessions: Sequence[Session]) -> tuple[np.ndarray, np.ndarray]:
        """Return posterior means ``(batch, dim)`` and precisions ``A`` ``(batch, dim, dim)``."""
        items, rewards = _observations(sessions, self.n_items)
        observed = self._padded_vectors[items]
        precision = self._prior_precision + np.einsum("btd,bte->bde", observed, observed)
        shift = self._prior_shift + np.einsum("btd,bt->bd", observed, rewards)
        mean = np.linalg.solve(precision, shift[..., None])[..., 0]
        return mean, precision

    def expected_rewards(self, sessions: Sequence[Session]) -> np.ndarray:
        """Return the posterior-mean rewards ``mu . x_i``, ``(batch, n_items)``."""
        mean, _ = self.posterior(sessions)
        return mean @ self.embeddings.vectors.T

    def _generators(self, sessions: Sequence[Session]) -> list[np.random.Generator]:
        return [np.random.default_rng(_session_seed(self.seed, s)) for s in sessions]


class EpsilonGreedy(LinearBandit):
    """Greedy slates on the ridge estimate, with random items in some slots.

    The ridge penalty ``ridge * ||theta - mu_0||^2`` shrinks towards the
    population mean. With probability ``epsilon``, each of the first
    ``slate_size`` ranks independently takes an item drawn uniformly from the
    items not in the session and not ranked higher. The other ranks take the
    best remaining item by predicted reward, and so do ranks past
    ``slate_size``. ``epsilon=0`` is the greedy ridge policy.
    """

    name = "EpsilonGreedy"

    def __init__(
        self,
        embeddings: ItemEmbeddings,
        *,
        epsilon: float = 0.1,
        ridge: float = 1.0,
        slate_size: int = 10,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1]; got {epsilon}")
        if ridge <= 0:
            raise ValueError(f"ridge must be positive; got {ridge}")
        if slate_size < 1:
            raise ValueError(f"slate_size must be at least 1; got {slate_size}")
        super().__init__(embeddings, ridge * np.eye(embeddings.dim), seed)
        self.epsilon = epsilon
        self.ridge = ridge
        self.slate_size = slate_size

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        predicted = self.expected_rewards(sessions)
        if self.epsilon == 0.0:
            return predicted.astype(np.float32)
        available = np.ones(predicted.shape, dtype=bool)
        for row, session in enumerate(sessions):
            available[row, session.shown()] = False
        slates = self._explore(predicted, available, sessions)
        # Encode the slate as the best scores: rank p gets slate_size - p, all else stays below 0.
        scores = predicted - predicted.max(axis=1, keepdims=True) - 1.0
        ranks = np.arange(slates.shape[1], 0, -1, dtype=np.float64)
        np.put_along_axis(scores, slates, np.broadcast_to(ranks, slates.shape), axis=1)
        return scores.astype(np.float32)

    def act(self, envs: Sequence[SimulatedUserEnv]) -> np.ndarray:
        """Return one slate per simulated user, exploring only among its allowed items.

        Unlike ranking :meth:`score` behind an allowed-item mask, an exploring
        slot here never draws an item outside the task's domain.
        """
        sessions = [env.session for env in envs]
        available = np.stack([env.allowed_mask() for env in envs])
        slate_size = envs[0].slate_size
        if slate_size > self.slate_size:
            raise ValueError(
                f"the environment shows {slate_size} items per slate, but EpsilonGreedy was "
                f"built with slate_size={self.slate_size}; build it with slate_size={slate_size}"
            )
        return self._explore(self.expected_rewards(sessions), available, sessions)[:, :slate_size]

    def _explore(
        self, predicted: np.ndarray, available: np.ndarray, sessions: Sequence[Session]
    ) -> np.ndarray:
        generators = self._generators(sessions)
        slots = min(self.slate_size, predicted.shape[1])
        explore = np.stack([g.random(slots) for g in generators]) < self.epsilon
        keys = np.stack([g.random(predicted.shape[1]) for g in generators])
        return fill_slates(predicted, available, explore, keys)


class ThompsonSampling(LinearBandit):
    """Scores items with one draw ``theta ~ N(mu, noise^2 A^-1)`` per session and call.

    The prior is the population Gaussian: ``Lambda_0 = prior_strength * P`` with
    ``P`` the inverse covariance of the training users' vectors (see
    :meth:`ItemEmbeddings.prior_precision`). ``noise`` is the reward noise
    scale ``sigma``, which also widens or narrows the exploration.
    """

    name = "ThompsonSampling"

    def __init__(
        self,
        embeddings: ItemEmbeddings,
        *,
        prior_strength: float = 1.0,
        noise: float = 0.3,
        seed: int = 0,
    ) -> None:
        if prior_strength <= 0:
            raise ValueError(f"prior_strength must be positive; got {prior_strength}")
        if noise < 0:
            raise ValueError(f"noise must be non-negative; got {noise}")
        super().__init__(embeddings, prior_strength * embeddings.prior_precision(), seed)
        self.prior_strength = prior_strength
        self.noise = noise

    def sample_vectors(self, sessions: Sequence[Session]) -> np.ndarray:
        """Return one posterior draw of the user vector per session, ``(batch, dim)``."""
        mean, precision = self.posterior(sessions)
        normal = np.stack(
            [g.standard_normal(self.embeddings.dim) for g in self._generators(sessions)]
        )
        # With A = L L^T, the vector L^-T z has covariance A^-1.
        cholesky = np.linalg.cholesky(precision)
        offsets = np.linalg.solve(np.swapaxes(cholesky, 1, 2), normal[..., None])[..., 0]
        return mean + self.noise * offsets

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        sampled = self.sample_vectors(sessions)
        return (sampled @ self.embeddings.vectors.T).astype(np.float32)


class LinUCB(LinearBandit):
    """Scores items by the upper confidence bound ``mu . x + alpha * sqrt(x^T A^-1 x)``.

    The prior is the same population Gaussian as in :class:`ThompsonSampling`.
    """

    name = "LinUCB"

    def __init__(
        self,
        embeddings: ItemEmbeddings,
        *,
        alpha: float = 0.3,
        prior_strength: float = 1.0,
        seed: int = 0,
    ) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative; got {alpha}")
        if prior_strength <= 0:
            raise ValueError(f"prior_strength must be positive; got {prior_strength}")
        super().__init__(embeddings, prior_strength * embeddings.prior_precision(), seed)
        self.alpha = alpha
        self.prior_strength = prior_strength

    def confidence_widths(self, precision: np.ndarray) -> np.ndarray:
        """Return ``sqrt(x_i^T A^-1 x_i)`` for every item, ``(batch, n_items)``."""
        vectors = self.embeddings.vectors
        widths = np.empty((precision.shape[0], self.n_items))
        # x^T A^-1 x = ||L^-1 x||^2 for the Cholesky factor A = L L^T.
        inverse_factor = np.linalg.inv(np.linalg.cholesky(precision))
        for start in range(0, precision.shape[0], _WIDTH_CHUNK):
            chunk = inverse_factor[start : start + _WIDTH_CHUNK]
            whitened = np.matmul(vectors[None], np.swapaxes(chunk, 1, 2))
            widths[start : start + _WIDTH_CHUNK] = np.sqrt(np.sum(whitened**2, axis=2))
        return widths

    def score(self, sessions: Sequence[Session]) -> np.ndarray:
        mean, precision = self.posterior(sessions)
        bonus = self.alpha * self.confidence_widths(precision) if self.alpha > 0 else 0.0
        return (mean @ self.embeddings.vectors.T + bonus).astype(np.float32)


def fill_slates(
    scores: np.ndarray, available: np.ndarray, explore: np.ndarray, keys: np.ndarray
) -> np.ndarray:
    """Fill slates rank by rank with the best available item or, where exploring, a random one.

    ``scores``, ``available`` (bool) and ``keys`` (uniform draws) are
    ``(batch, n_items)``, and ``explore`` is a bool ``(batch, slots)``. An
    exploring rank takes the available item with the highest key, which is
    uniform over the available items. ``available`` is updated in place.
    Every row needs at least ``slots`` available items.
    """
    batch, slots = explore.shape
    slates = np.zeros((batch, slots), dtype=np.int64)
    rows = np.arange(batch)
    for slot in range(slots):
        greedy = np.where(available, scores, -np.inf).argmax(axis=1)
        uniform = np.where(available, keys, -np.inf).argmax(axis=1)
        slates[:, slot] = np.where(explore[:, slot], uniform, greedy)
        available[rows, slates[:, slot]] = False
    return slates


def _observations(sessions: Sequence[Session], n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Return padded item indices ``(batch, tokens)`` and rewards: 1 for chosen, 0 for skipped.

    Padding uses the index ``n_items`` and reward 0.
    """
    width = max((len(s) for s in sessions), default=0)
    items = np.full((len(sessions), width), n_items, dtype=np.int64)
    rewards = np.zeros((len(sessions), width))
    for row, session in enumerate(sessions):
        length = len(session)
        items[row, :length] = session.items
        rewards[row, :length] = session.feedback != SKIP
    return items, rewards


def _session_seed(seed: int, session: Session) -> list[int]:
    """Return a seed sequence entropy that depends only on ``seed`` and the session's tokens."""
    digest = hashlib.sha1(np.ascontiguousarray(session.items, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(session.feedback, dtype=np.int64).tobytes())
    return [seed, int.from_bytes(digest.digest()[:8], "little")]
