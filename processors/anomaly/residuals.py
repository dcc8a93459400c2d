"""From a regressor's residual to a raw model score, with robust running moments.

Per key and model, a running mean and variance of the residuals: the
weight of a new residual is ``max(alpha, 1 / n)`` (an ordinary mean over the
first records, an exponentially weighted one afterwards). A residual is
judged by how many deviations it lies from the mean, ``z = |r - mean| / sd``,
which becomes the raw score ``z / (z + 3)``: three deviations score 0.5,
nine 0.75, and the score keeps growing with the surprise instead of
saturating.

The moments are robust: once there is a spread, a value further than
``clip`` deviations from the mean moves them as if it were at ``clip``
deviations (winsorised), so one value can move them only by a bounded
amount, however large it is. Values are also held within
:data:`LARGEST`, so that squares never overflow. The same update serves
the calibration (:mod:`~otelml.processors.anomaly.calibration`).
"""

from __future__ import annotations

import numpy as np

from otelml.processors.anomaly.store import Field

# z at which a residual scores 0.5.
Z_HALF_SCORE = 3.0
# Residual spread below this (relative to the mean) counts as none at all.
RELATIVE_FLOOR = 1e-12
# No value beyond this is used: its square stays finite.
LARGEST = 1e150

MOMENTS = {"mean": Field((), np.float64, 0.0), "var": Field((), np.float64, 0.0), "n": Field((), np.float64, 0.0)}


def z_to_score(z):
    """Map a normalised residual to [0, 1).

    >>> z_to_score(0.0), z_to_score(3.0), z_to_score(9.0)
    (0.0, 0.5, 0.75)
    """
    return z / (z + Z_HALF_SCORE)


def deviations(moments: dict, size: int, x: np.ndarray) -> np.ndarray:
    """How many deviations each ``x`` lies from its key's mean (0 before two values)."""
    mean, var, n = (moments[part][:size] for part in ("mean", "var", "n"))
    spread = np.sqrt(var)
    floor = RELATIVE_FLOOR * (1.0 + np.abs(mean))
    return np.where(n < 2, 0.0, np.abs(x - mean) / np.where(spread > floor, spread, floor))


def learn_moments(moments: dict, size: int, x: np.ndarray, alpha: float, clip: float, where: np.ndarray) -> None:
    """Move each key's mean and variance on by ``x`` (winsorised at ``clip`` deviations), where ``where`` is true.

    >>> moments = {name: np.zeros(1) for name in MOMENTS}
    >>> for value in (1.0, -1.0, 1.0, -1.0):
    ...     learn_moments(moments, 1, np.array([value]), 0.01, 3.0, np.ones(1, dtype=bool))
    >>> learn_moments(moments, 1, np.array([1e308]), 0.01, 3.0, np.ones(1, dtype=bool))
    >>> float(moments["mean"][0]) <= 3 * 1.2, bool(np.isfinite(moments["var"][0]))
    (True, True)
    """
    mean, var, n = (moments[part][:size] for part in ("mean", "var", "n"))
    spread = np.sqrt(var)
    limit = np.where((n >= 2) & (spread > 0), clip * spread, LARGEST)
    delta = np.clip(x - mean, -limit, limit)
    seen = n + 1.0
    weight = np.where(seen * alpha < 1.0, 1.0 / seen, alpha)
    np.copyto(mean, mean + weight * delta, where=where)
    np.copyto(var, (1.0 - weight) * (var + weight * delta * delta), where=where)
    np.copyto(n, seen, where=where)


class ResidualScale:
    """The residual moments of one regressor, over a rank of keys.

    Parameters
    ----------
    alpha
        Weight of a new residual once the key has seen ``1 / alpha`` of them.
    clip
        Deviations at which residuals are winsorised (``inf``: never).
    """

    fields = MOMENTS

    def __init__(self, alpha: float, clip: float):
        self.alpha = alpha
        self.clip = clip

    def observe(self, state: dict, size: int, residual: np.ndarray, judged: np.ndarray) -> np.ndarray:
        """The raw scores of ``residual`` (0 where not ``judged``); then learn them."""
        residual = np.clip(residual, -LARGEST, LARGEST)
        z = deviations(state, size, residual)
        learn_moments(state, size, residual, self.alpha, self.clip, judged)
        return np.where(judged, z_to_score(z), 0.0)

    def usual_range(self, state: dict, size: int, prediction: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
        """``prediction`` plus the mean residual, ± ``width`` deviations; NaN before two residuals."""
        mean, var, n = (state[part][:size] for part in ("mean", "var", "n"))
        centre = np.where(n >= 2, prediction + mean, np.nan)
        spread = width * np.sqrt(var)
        return centre - spread, centre + spread
