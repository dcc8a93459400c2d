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


@dataclasses.dataclass
class Judged:
    """What a rank's deviations scored: ``score`` (calibrated), ``plain`` (``z / (z + 3)``), ``isolated``, ``seen``.

    ``isolated`` marks deviations beyond ``clip`` whose key's previous one
    was not: the models learn those records winsorised too. ``seen`` is how
    many deviations each key's scale had learned before these.
    """

    score: np.ndarray
    plain: np.ndarray
    isolated: np.ndarray
    seen: np.ndarray


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
        self.fields = {**MOMENTS, "beyond": Field((), np.bool_, False), **({} if calibration is None else calibration.fields)}

    def observe(self, state: dict, size: int, deviation: np.ndarray, judged: np.ndarray, plain: bool = True) -> Judged:
        """The scores of ``deviation`` (0 where not ``judged``); then learn it.

        ``plain``: also give the uncalibrated scores (else ``Judged.plain`` is the calibrated ones).
        """
        # The calibration learns from keys with enough deviations to judge by.
        seen = state["n"][:size].copy()
        z, isolated = self._step(state, size, deviation, judged)
        if self.calibration is None:
            uncalibrated = np.where(judged, z_to_score(z), 0.0)
            return Judged(uncalibrated, uncalibrated, isolated, seen)
        score = np.where(judged, self.calibration.score(state, size, z, judged & (seen > CALIBRATE_AFTER), seen), 0.0)
        return Judged(score, np.where(judged, z_to_score(z), 0.0) if plain else score, isolated, seen)

    def learn(self, state: dict, size: int, deviation: np.ndarray, judged: np.ndarray) -> np.ndarray:
        """Learn ``deviation`` where ``judged`` (robustly, see the module docstring); which were isolated."""
        return self._step(state, size, deviation, judged)[1]

    def _step(self, state: dict, size: int, deviation: np.ndarray, judged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z`` of each deviation (before learning it) and whether it was isolated; the moments learn it where ``judged``."""
        mean, var, n, beyond = (state[part][:size] for part in ("mean", "var", "n", "beyond"))
        delta = np.clip(deviation, -LARGEST, LARGEST) - mean
        distance = np.abs(delta)
        spread = np.sqrt(var)
        floor = RELATIVE_FLOOR * (1.0 + np.abs(mean))
        z = np.where(n < 2, 0.0, np.minimum(distance / np.maximum(spread, floor), Z_LARGEST))
        limit = np.where(n >= CLIP_AFTER, self.clip * spread, LARGEST)
        out = distance > limit
        isolated = judged & out & ~beyond
        if isolated.any():
            delta = np.where(isolated, np.clip(delta, -limit, limit), delta)
        seen = n + 1.0
        weight = np.where(seen * self.alpha < 1.0, 1.0 / seen, self.alpha)
        np.copyto(mean, mean + weight * delta, where=judged)
        np.copyto(var, (1.0 - weight) * (var + weight * delta * delta), where=judged)
        np.copyto(n, seen, where=judged)
        np.copyto(beyond, out, where=judged)
        return z, isolated

    def usual_range(self, state: dict, size: int, prediction: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
        """``prediction`` plus the mean residual, ± ``width`` standard deviations; NaN before two residuals."""
        mean, var, n = (state[part][:size] for part in ("mean", "var", "n"))
        centre = np.where(n >= 2, prediction + mean, np.nan)
        spread = width * np.sqrt(var)
        return centre - spread, centre + spread
