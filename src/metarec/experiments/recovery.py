"""Recovery figures: the time a policy's reward takes to come back after a preference switch.

Two references for "back":

- the policy's own mean reward over the ``PRE_SWITCH_WINDOW`` steps before
  the switch (:func:`recovery_time`);
- the reward the same policy earns at the same step when the same users,
  with the same random draws, keep their preference (:func:`recovery_against_control`).

The first is simple but confounded: rewards fall during an episode even
without a switch, because users quit and the best items get used up, so a
curve may never regain its early level. The second compares like with like:
both episodes are identical up to the switch, so the gap after it is the
switch's own effect. Both count the steps from the switch until the reward
is at ``RECOVERY_LEVEL`` of the reference, 0 when it is there at the switch step and
``inf`` when it does not come back within the episode. Each is a first
crossing: the reward may fall below the line again later.

Both figures read the mean curve over users. The recovery time per user
(:func:`user_recovery_steps`) resolves finer: it takes each user's own
first crossing of 90% of their no-switch reward and averages over users. A
user still below the line when the episode ends counts the steps left.
So the mean is a restricted mean, which can only understate slow
recoveries, and the share of users back by the end comes with it. Users
who left before the switch have nothing to recover and are left out.

``kept`` is the reward after the switch as a share of the no-switch reward
after it: 1 means the switch cost nothing. ``first`` is that share for the
first slate after the switch step alone, the first one a policy chooses with
feedback given under the new preference. Recovery times are whole steps, and
every policy that adapts at all needs at least 1, so ``first`` separates
policies that tie on 1 step.

Every figure reads the expected reward of the slates shown (the click
probabilities of the user at that step, summed), not the realised clicks.
Both have the same mean, but the expected reward leaves out the click noise,
which would otherwise decide many first crossings of the 90% line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from metarec.simulation.runner import EpisodeResults

RECOVERY_LEVEL = 0.9
PRE_SWITCH_WINDOW = 3
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


def recovery_time(curve: np.ndarray, switch: int) -> float:
    """Return the steps from ``switch`` until ``curve`` regains 90% of its pre-switch mean."""
    before = float(np.mean(curve[max(switch - PRE_SWITCH_WINDOW, 0) : switch]))
    if before <= 0:
        return float("nan")
    for step in range(switch, curve.shape[0]):
        if curve[step] >= RECOVERY_LEVEL * before:
            return float(step - switch)
    return float("inf")


def recovery_against_control(curve: np.ndarray, control: np.ndarray, switch: int) -> float:
    """Return the steps from ``switch`` until ``curve`` is at 90% of ``control`` at that step."""
    for step in range(switch, curve.shape[0]):
        if curve[step] >= RECOVERY_LEVEL * control[step]:
            return float(step - switch)
    return float("inf")


def kept_share(curve: np.ndarray, control: np.ndarray, switch: int) -> float:
    """Return the reward from ``switch`` on as a share of the no-switch reward from there."""
    reference = float(np.sum(control[switch:]))
    return float(np.sum(curve[switch:])) / reference if reference > 0 else float("nan")


def first_slate_share(curve: np.ndarray, control: np.ndarray, switch: int) -> float:
    """Return the reward of the first slate after the switch step over its no-switch reward.

    That slate is the first one chosen with feedback given under the new
    preference, because the slate of the switch step itself is the same with
    and without the switch.
    """
    step = switch + 1
    if step >= curve.shape[0] or control[step] <= 0:
        return float("nan")
    return float(curve[step] / control[step])


def user_recovery_steps(
    shifted: EpisodeResults, control: EpisodeResults, switch: int
) -> np.ndarray:
    """Return per user the steps from ``switch`` until the expected reward is back at 90%.

    The reference is the user's own expected reward at the same step of the
    no-switch episode. A user never back counts the steps left in the
    episode; a user who left before the switch is NaN. With results averaged
    over several episodes per user, ``active`` is a share, and only users who
    left before the switch in every episode are NaN.
    """
    curves, references = shifted.expected_rewards, control.expected_rewards
    back = curves[:, switch:] >= RECOVERY_LEVEL * references[:, switch:]
    horizon = curves.shape[1] - switch
    steps = np.where(back.any(axis=1), back.argmax(axis=1), horizon).astype(np.float64)
    steps[shifted.active[:, switch] == 0] = np.nan
    return steps


ShareFigure = Callable[[np.ndarray, np.ndarray, int], float]


def measure_recovery(
    shifted: Mapping[str, EpisodeResults],
    control: Mapping[str, EpisodeResults],
    switch: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Return each policy's recovery figures with bootstrap intervals over users.

    ``shifted`` and ``control`` hold, per policy, the episodes of the same
    tasks and seed with and without the switch. Every policy is resampled
    with the same users, so the intervals of two policies are paired.
    """
    weights = _bootstrap_weights(next(iter(shifted.values())).rewards.shape[0], seed)
    table = {}
    for name, result in shifted.items():
        row = _policy_recovery(
            result.expected_rewards, control[name].expected_rewards, switch, weights
        )
        steps = user_recovery_steps(result, control[name], switch)
        row.update(_user_row(steps, result.rewards.shape[1] - switch, weights))
        table[name] = row
    return table


def paired_differences(
    shifted: Mapping[str, EpisodeResults],
    control: Mapping[str, EpisodeResults],
    policy: str,
    switch: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Return ``policy``'s recovery figures minus every other policy's, with paired intervals.

    Each row contains the difference in reward kept (``kept``, ``kept_low``,
    ``kept_high``), in the first slate's share (``first``, ``first_low``,
    ``first_high``) and in the mean recovery steps per user (``steps``,
    ``steps_low``, ``steps_high``; below 0 when ``policy`` recovers sooner).
    The steps compare only users present at the switch under both policies.
    """
    weights = _bootstrap_weights(shifted[policy].rewards.shape[0], seed)
    table: dict[str, dict[str, float]] = {name: {} for name in shifted if name != policy}
    for key, share in (("kept", kept_share), ("first", first_slate_share)):

        def samples(name: str, share: ShareFigure = share) -> np.ndarray:
            curves = weights @ shifted[name].expected_rewards
            references = weights @ control[name].expected_rewards
            pairs = zip(curves, references, strict=True)
            return np.array([share(curve, reference, switch) for curve, reference in pairs])

        policy_samples = samples(policy)
        policy_share = share(_mean(shifted[policy]), _mean(control[policy]), switch)
        for name, row in table.items():
            low, high = _interval(policy_samples - samples(name))
            other_share = share(_mean(shifted[name]), _mean(control[name]), switch)
            row.update({key: policy_share - other_share, f"{key}_low": low, f"{key}_high": high})
    own_steps = user_recovery_steps(shifted[policy], control[policy], switch)
    for name, row in table.items():
        gap = own_steps - user_recovery_steps(shifted[name], control[name], switch)
        low, high = _interval(_weighted_means(weights, gap))
        row.update({"steps": _nan_mean(gap), "steps_low": low, "steps_high": high})
    return table


def _policy_recovery(
    rewards: np.ndarray, control: np.ndarray, switch: int, weights: np.ndarray
) -> dict[str, float]:
    curve, reference = rewards.mean(axis=0), control.mean(axis=0)
    curves, references = weights @ rewards, weights @ control
    pairs = list(zip(curves, references, strict=True))
    before = float(np.mean(curve[switch - PRE_SWITCH_WINDOW : switch]))
    steps = recovery_time(curve, switch)
    control_steps = recovery_against_control(curve, reference, switch)
    low, high = _step_interval(np.array([recovery_time(c, switch) for c in curves]))
    control_low, control_high = _step_interval(
        np.array([recovery_against_control(c, r, switch) for c, r in pairs])
    )
    kept_low, kept_high = _interval(np.array([kept_share(c, r, switch) for c, r in pairs]))
    first_low, first_high = _interval(np.array([first_slate_share(c, r, switch) for c, r in pairs]))
    return {
        "recovery_steps": steps,
        "recovered": bool(np.isfinite(steps)),
        "dropped": bool(curve[switch] < RECOVERY_LEVEL * before),
        "low": low,
        "high": high,
        "pre_switch_reward": before,
        "post_switch_reward": float(np.mean(curve[switch:])),
        "control_recovery_steps": control_steps,
        "control_recovered": bool(np.isfinite(control_steps)),
        "control_dropped": bool(curve[switch] < RECOVERY_LEVEL * reference[switch]),
        "control_low": control_low,
        "control_high": control_high,
        "control_post_switch_reward": float(np.mean(reference[switch:])),
        "kept": kept_share(curve, reference, switch),
        "kept_low": kept_low,
        "kept_high": kept_high,
        "first": first_slate_share(curve, reference, switch),
        "first_low": first_low,
        "first_high": first_high,
    }


_USER_KEYS = (
    "user_steps",
    "user_low",
    "user_high",
    "user_back",
    "user_dropped",
    "user_dropped_steps",
)


def _user_row(steps: np.ndarray, horizon: int, weights: np.ndarray) -> dict[str, float]:
    """Return the mean recovery steps per user, its interval, and the shares behind it.

    ``horizon`` is the number of steps from the switch to the end of the
    episode. ``user_dropped`` is the share of users below the line at the
    switch step, and ``user_dropped_steps`` is their mean recovery steps. A
    policy may take longer on average because more of its users drop, or
    because those who drop take longer to come back.
    """
    present = steps[np.isfinite(steps)]
    if not present.size:
        return dict.fromkeys(_USER_KEYS, float("nan"))
    low, high = _interval(_weighted_means(weights, steps))
    dropped = present[present > 0]
    figures = (
        float(np.mean(present)),
        low,
        high,
        float(np.mean(present < horizon)),
        dropped.size / present.size,
        _nan_mean(dropped),
    )
    return dict(zip(_USER_KEYS, figures, strict=True))


def _nan_mean(values: np.ndarray) -> float:
    """Return the mean of the values that are not NaN, or NaN when there are none."""
    present = values[~np.isnan(values)]
    return float(np.mean(present)) if present.size else float("nan")


def _weighted_means(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return per bootstrap row the weighted mean of ``values``, leaving NaN users out."""
    present = np.isfinite(values)
    present_weights = weights * present[None]
    totals = present_weights.sum(axis=1)
    sums = present_weights @ np.where(present, values, 0.0)
    return np.divide(sums, totals, out=np.full(totals.shape, np.nan), where=totals > 0)


def _mean(result: EpisodeResults) -> np.ndarray:
    return result.expected_rewards.mean(axis=0)


def _bootstrap_weights(users: int, seed: int) -> np.ndarray:
    """Return ``(resamples, users)`` weights; row r is each user's share of bootstrap sample r."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(users, np.full(users, 1.0 / users), BOOTSTRAP_RESAMPLES) / users


def _interval(samples: np.ndarray) -> tuple[float, float]:
    # NOTE: samples that are NaN (no no-switch reward to compare with) are left out, so
    # the interval covers the resamples where the figure is defined.
    tail = (1.0 - CONFIDENCE) / 2.0
    finite = samples[np.isfinite(samples)]
    if not finite.size:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def _step_interval(samples: np.ndarray) -> tuple[float, float]:
    """Return the interval of recovery times; ``inf`` (not recovered) counts as the largest."""
    defined = samples[~np.isnan(samples)]
    if not defined.size:
        return float("nan"), float("nan")
    tail = (1.0 - CONFIDENCE) / 2.0
    # inverted_cdf picks sample values, so an interval end may be inf without NaN arithmetic.
    low, high = np.quantile(defined, [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)
