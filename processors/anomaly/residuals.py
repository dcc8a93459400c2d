"""From a model's deviation (a regressor's residual) to its score, with robust running moments.

Per key and model, a running mean and variance of the deviations: the
weight of a new one is ``max(alpha, 1 / n)`` (an ordinary mean over the
first records, an exponentially weighted one afterwards). A deviation is
judged by how many standard deviations it lies from the mean,
``z = |r - mean| / sd``, and scored ``z / (z + half)`` (see
:mod:`~otelml.processors.anomaly.calibration` for ``half``): the score
keeps growing with the surprise instead of saturating.

The moments are robust to one wild value without going blind to a real
change. A deviation further than ``clip`` standard deviations from the
mean is winsorised (it moves the moments as if it were at ``clip``) when it
is *isolated*, that is when the key's previous deviation was within
``clip``; the second of a run of such deviations is learned as it is, so a
lasting change widens the scale until records stop being flagged, while a
single glitch (``1e9``, ``1e308``) moves it only by a bounded amount.
Values are held within :data:`LARGEST` and ``z`` within :data:`Z_LARGEST`,
so no square overflows and no score is NaN.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from otelml.processors.anomaly.calibration import Calibration
from otelml.processors.anomaly.store import Field

# z at which a deviation scores 0.5 before calibration.
Z_HALF_SCORE = 3.0
# Spread below this (relative to the mean) counts as none at all.
RELATIVE_FLOOR = 1e-12
# No value beyond this is used: its square stays finite.
LARGEST = 1e150
# A z beyond this says nothing more (and z / (z + half) stays a number).
Z_LARGEST = 1e6
# Deviations the moments see before they winsorise, and before the calibration learns.
CLIP_AFTER = 10
CALIBRATE_AFTER = 20

MOMENTS = {"mean": Field((), np.float64, 0.0), "var": Field((), np.float64, 0.0), "n": Field((), np.float64, 0.0)}


def z_to_score(z, half=Z_HALF_SCORE):
    """Map a normalised deviation to [0, 1).

    >>> z_to_score(0.0), z_to_score(3.0), z_to_score(9.0)
    (0.0, 0.5, 0.75)
    """
    return z / (z + half)


def deviations(moments: dict, size: int, x: np.ndarray) -> np.ndarray:
    """How many standard deviations each ``x`` lies from its key's mean (0 before two values)."""
    mean, var, n = (moments[part][:size] for part in ("mean", "var", "n"))
    spread = np.sqrt(var)
    floor = RELATIVE_FLOOR * (1.0 + np.abs(mean))
    z = np.where(n < 2, 0.0, np.abs(x - mean) / np.where(spread > floor, spread, floor))
    return np.minimum(z, Z_LARGEST)


def learn_moments(moments: dict, size: int, x: np.ndarray, alpha: float, where: np.ndarray,
                  limit: np.ndarray | float = LARGEST) -> None:
    """Move each key's mean and variance on by ``x``, its distance from the mean held within ``limit``.

    >>> moments = {name: np.zeros(1) for name in MOMENTS}
    >>> for value in (1.0, -1.0, 1.0, -1.0):
    ...     learn_moments(moments, 1, np.array([value]), 0.01, np.ones(1, dtype=bool))
    >>> round(float(moments["var"][0]), 3)
    1.0
    """
    mean, var, n = (moments[part][:size] for part in ("mean", "var", "n"))
    delta = np.clip(np.clip(x, -LARGEST, LARGEST) - mean, -limit, limit)
    seen = n + 1.0
    weight = np.where(seen * alpha < 1.0, 1.0 / seen, alpha)
    np.copyto(mean, mean + weight * delta, where=where)
    np.copyto(var, (1.0 - weight) * (var + weight * delta * delta), where=where)
    np.copyto(n, seen, where=where)


@dataclasses.dataclass
class Judged:
    """What a rank's deviations scored: ``score`` (calibrated), ``plain`` (``z / (z + 3)``) and ``isolated``.

    ``isolated`` marks deviations beyond ``clip`` whose key's previous one
    was not: the models learn those records winsorised too.
    """

    score: np.ndarray
    plain: np.ndarray
    isolated: np.ndarray


class ResidualScale:
    """The deviation moments of one model, over a rank of keys.

    Parameters
    ----------
    alpha
        Weight of a new deviation once the key has seen ``1 / alpha`` of them.
    clip
        Standard deviations beyond which an isolated deviation is winsorised (``inf``: never).
    calibration
        Turns ``z`` into the model's score; ``None``: ``z / (z + 3)``.

    Examples
    --------
    One ``1e308`` among readings near 0 barely moves the scale; a lasting
    jump widens it:

    >>> scale = ResidualScale(alpha=0.01, clip=5.0, calibration=None)
    >>> state = {name: np.full(1, field.fill, field.dtype) for name, field in scale.fields.items()}
    >>> judge = lambda value: float(scale.observe(state, 1, np.array([value]), np.ones(1, dtype=bool)).score[0])
    >>> _ = [judge(value) for value in [1.0, -1.0] * 20]
    >>> round(judge(1e308), 3), round(judge(0.5), 3)
    (1.0, 0.091)
    >>> [round(judge(40.0), 2) for _ in range(3)]
    [0.91, 0.9, 0.68]
    """

    def __init__(self, alpha: float, clip: float, calibration: Calibration | None):
        self.alpha = alpha
        self.clip = clip
        self.calibration = calibration
        self.fields = {**MOMENTS, "beyond": Field((), np.bool_, False),
                       **({} if calibration is None else calibration.fields)}

    def observe(self, state: dict, size: int, deviation: np.ndarray, judged: np.ndarray) -> Judged:
        """The scores of ``deviation`` (0 where not ``judged``); then learn it."""
        deviation = np.clip(deviation, -LARGEST, LARGEST)
        z = deviations(state, size, deviation)
        # The calibration learns from keys with enough deviations to judge by.
        seen = state["n"][:size].copy()
        settled = judged & (seen > CALIBRATE_AFTER)
        isolated = self.learn(state, size, deviation, judged)
        plain = np.where(judged, z_to_score(z), 0.0)
        if self.calibration is None:
            return Judged(plain, plain, isolated)
        score = self.calibration.score(state, size, z, settled, seen)
        return Judged(np.where(judged, score, 0.0), plain, isolated)

    def learn(self, state: dict, size: int, deviation: np.ndarray, judged: np.ndarray) -> np.ndarray:
        """Learn ``deviation`` where ``judged`` (robustly, see the module docstring); which were isolated."""
        mean, var, n, beyond = (state[part][:size] for part in ("mean", "var", "n", "beyond"))
        limit = np.where(n >= CLIP_AFTER, self.clip * np.sqrt(var), LARGEST)
        out = np.abs(np.clip(deviation, -LARGEST, LARGEST) - mean) > limit
        isolated = judged & out & ~beyond
        learn_moments(state, size, deviation, self.alpha, judged, np.where(isolated, limit, LARGEST))
        np.copyto(beyond, out, where=judged)
        return isolated

    def usual_range(self, state: dict, size: int, prediction: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
        """``prediction`` plus the mean residual, ± ``width`` standard deviations; NaN before two residuals."""
        mean, var, n = (state[part][:size] for part in ("mean", "var", "n"))
        centre = np.where(n >= 2, prediction + mean, np.nan)
        spread = width * np.sqrt(var)
        return centre - spread, centre + spread
