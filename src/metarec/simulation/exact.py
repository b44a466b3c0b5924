"""Exact solution of a small simulated-user MDP by policy iteration.

The MDP is one task of :class:`~metarec.envs.simulated.SimulatedUserEnv` on a
tiny catalog. A state is (items shown so far, step, slates without a click);
an action is an ordered slate of unshown allowed items. The expected reward
of a slate is ``sum_j exam_j * a_j * value_j``. For the next state only
whether the slate got any click matters, because a click resets the count of
slates without a click. Each action therefore has two successors, with
probabilities ``1 - P0`` and ``P0 = prod_j (1 - exam_j * a_j)``.

Policy iteration starts from the myopic oracle, so its first evaluation is
the oracle's exact expected return. It stops when no state's action can be
improved, and the value it then returns is the optimal expected return.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from metarec.envs.simulated import SimulatedUserEnv
from metarec.errors import ConfigError
from metarec.simulation.policies import oracle_slates

State = tuple[int, int, int]
"""(bit mask of shown items, step, slates without a click)."""

MAX_EXACT_ITEMS = 12
IMPROVEMENT_TOLERANCE = 1e-12


@dataclass(frozen=True)
class ExactSolution:
    """Optimal and oracle expected returns of one task, from the initial state."""

    optimal_return: float
    oracle_return: float
    iterations: int
    states: int
    optimal_first_slate: tuple[int, ...]
    oracle_first_slate: tuple[int, ...]


class _TaskModel:
    """Expected rewards and transitions of one task, read from an environment."""

    def __init__(self, env: SimulatedUserEnv) -> None:
        self.env = env
        task = env.task
        self.allowed = np.flatnonzero(env.allowed_mask() | _history_mask(env))
        self.start: State = (_bits(np.asarray(task.history, dtype=np.int64)), 0, 0)
        self.values = [self._item_values(step) for step in range(env.rounds)]
        self.attraction = [
            env.response.attraction(task.preference_at(step)) for step in range(env.rounds)
        ]

    def _item_values(self, step: int) -> np.ndarray:
        attraction = self.env.response.attraction(self.env.task.preference_at(step))
        click_value = self.env.reward_model.click_value(attraction, np.arange(self.env.n_items))
        return attraction * click_value

    def terminal(self, state: State) -> bool:
        shown, step, no_click = state
        patience = self.env.patience
        left = sum(1 for item in self.allowed if not shown >> int(item) & 1)
        quit_now = patience is not None and no_click >= patience
        return step >= self.env.rounds or quit_now or left < self.env.slate_size

    def actions(self, state: State) -> Iterator[tuple[int, ...]]:
        shown = state[0]
        free = [int(item) for item in self.allowed if not shown >> int(item) & 1]
        return itertools.permutations(free, self.env.slate_size)

    def outcome(self, state: State, slate: tuple[int, ...]) -> tuple[float, float, State, State]:
        """Return (expected reward, P(no click), state after a click, state after none)."""
        shown, step, no_click = state
        items = np.asarray(slate, dtype=np.int64)
        exam = self.env.examination
        reward = float(np.sum(exam * self.values[step][items]))
        no_click_probability = float(np.prod(1.0 - exam * self.attraction[step][items]))
        after = shown | _bits(items)
        return reward, no_click_probability, (after, step + 1, 0), (after, step + 1, no_click + 1)

    def oracle_action(self, state: State) -> tuple[int, ...]:
        shown, step, _ = state
        allowed = np.zeros(self.env.n_items, dtype=bool)
        allowed[self.allowed] = True
        allowed[[item for item in range(self.env.n_items) if shown >> item & 1]] = False
        slate = oracle_slates(self.values[step][None], allowed[None], self.env.examination)
        return tuple(int(item) for item in slate[0])


def solve_exact(env: SimulatedUserEnv, task: int = 0, max_iterations: int = 50) -> ExactSolution:
    """Solve the MDP of ``env.tasks[task]`` exactly and evaluate the oracle on it.

    The catalog must be tiny (at most 12 items), because states and actions
    are enumerated.
    """
    if env.n_items > MAX_EXACT_ITEMS:
        raise ConfigError(
            f"exact solution enumerates every slate; n_items={env.n_items} is above "
            f"{MAX_EXACT_ITEMS}, so use a smaller catalog"
        )
    env.reset(seed=0, options={"task": task})
    model = _TaskModel(env)
    states = _reachable(model)
    policy = {state: model.oracle_action(state) for state in states if not model.terminal(state)}
    oracle_value = _evaluate(model, states, policy)
    value, iterations = oracle_value, 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (the count is returned)
        changed = _improve(model, states, policy, value)
        value = _evaluate(model, states, policy)
        if not changed:
            break
    return ExactSolution(
        optimal_return=value[model.start],
        oracle_return=oracle_value[model.start],
        iterations=iterations,
        states=len(states),
        optimal_first_slate=policy.get(model.start, ()),
        oracle_first_slate=model.oracle_action(model.start),
    )


def _reachable(model: _TaskModel) -> list[State]:
    """Return every state reachable from the start, ordered by decreasing step."""
    seen = {model.start}
    frontier = [model.start]
    while frontier:
        state = frontier.pop()
        if model.terminal(state):
            continue
        for slate in model.actions(state):
            for successor in model.outcome(state, slate)[2:]:
                if successor not in seen:
                    seen.add(successor)
                    frontier.append(successor)
    return sorted(seen, key=lambda state: -state[1])


def _q_value(
    model: _TaskModel, state: State, slate: tuple[int, ...], value: dict[State, float]
) -> float:
    reward, no_click, after_click, after_none = model.outcome(state, slate)
    return reward + (1.0 - no_click) * value[after_click] + no_click * value[after_none]


def _evaluate(
    model: _TaskModel, states: list[State], policy: dict[State, tuple[int, ...]]
) -> dict[State, float]:
    # States are ordered by decreasing step, so every successor is valued before its parent.
    value: dict[State, float] = {}
    for state in states:
        value[state] = (
            0.0 if model.terminal(state) else _q_value(model, state, policy[state], value)
        )
    return value


def _improve(
    model: _TaskModel,
    states: list[State],
    policy: dict[State, tuple[int, ...]],
    value: dict[State, float],
) -> bool:
    changed = False
    for state in states:
        if model.terminal(state):
            continue
        best_slate, best = policy[state], value[state]
        for slate in model.actions(state):
            q = _q_value(model, state, slate, value)
            if q > best + IMPROVEMENT_TOLERANCE:
                best_slate, best = slate, q
        if best_slate != policy[state]:
            policy[state] = best_slate
            changed = True
    return changed


def _bits(items: np.ndarray) -> int:
    mask = 0
    for item in items.tolist():
        mask |= 1 << int(item)
    return mask


def _history_mask(env: SimulatedUserEnv) -> np.ndarray:
    mask = np.zeros(env.n_items, dtype=bool)
    mask[np.asarray(env.task.history, dtype=np.int64)] = True
    return mask
