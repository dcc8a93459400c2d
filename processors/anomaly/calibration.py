"""The calibrated score: how unlikely a key's recent raw scores are, given its own past.

Raw composite scores mean different things on different series (a spiky
series scores high all the time), so one threshold cannot serve them all.
As HTM's anomaly likelihood does, per key: a short exponentially weighted
mean of the raw score (half-life ``short`` records) is compared with the
long-run mean and variance of that short mean (half-life ``long`` records,
robust updates as the residual scales'): ``L = Phi((short - mean) / sd)``,
with the mean and variance held above ``min_mean`` and ``min_variance`` so
that a flat series does not turn every blip into an alarm. The calibrated
score is ``log(1.0000000001 - L) / log(1e-10)`` in [0, 1]: 0.5 at
``L = 1 - 1e-5``, 1 from ``L = 1 - 1e-10`` on.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from otelml.processors.anomaly.config import CalibrationConfig, half_life_weight
from otelml.processors.anomaly.residuals import MOMENTS, learn_moments
from otelml.processors.anomaly.store import Field

LOG_FLOOR = math.log(1e-10)
# Winsorise the long-run moments of the short mean as the residual scales do.
CLIP = 5.0


def likelihood_score(tail: np.ndarray) -> np.ndarray:
    """The calibrated score of an anomaly likelihood ``L``, given its tail ``1 - L`` (which keeps its precision).

    >>> likelihood_score(np.array([0.5, 1e-5, 0.0])).round(3).tolist()
    [0.03, 0.5, 1.0]
    """
    # log(1.0000000001 - L) with 1 - L computed without cancellation.
    return np.clip(np.log(1e-10 + tail) / LOG_FLOOR, 0.0, 1.0)


class Calibration:
    """Turns each key's raw composite scores into calibrated ones, a rank of keys at a time.

    Examples
    --------
    >>> calibration = Calibration(CalibrationConfig(short=1.0, long=100.0))
    >>> state = {name: np.full((1, *field.shape), field.fill) for name, field in calibration.fields.items()}
    >>> quiet = [float(calibration.score(state, 1, np.array([0.1 + 0.01 * (i % 3)]))[0]) for i in range(200)]
    >>> round(max(quiet[50:]), 2) < 0.5 < float(calibration.score(state, 1, np.array([0.9]))[0])
    True
    """

    def __init__(self, config: CalibrationConfig):
        self.short_alpha = half_life_weight(config.short)
        self.long_alpha = half_life_weight(config.long)
        self.min_mean = config.min_mean
        self.min_variance = config.min_variance
        self.fields = {"short": Field((), np.float64, np.nan), **MOMENTS}

    def score(self, state: dict, size: int, raw: np.ndarray) -> np.ndarray:
        """The calibrated scores of a rank's raw scores; then each key's statistics learn them."""
        short = state["short"][:size]
        np.copyto(short, np.where(short != short, raw, short + self.short_alpha * (raw - short)))
        mean = np.maximum(state["mean"][:size], self.min_mean)
        sd = np.sqrt(np.maximum(state["var"][:size], self.min_variance))
        calibrated = likelihood_score(ndtr((mean - short) / sd))
        learn_moments(state, size, short, self.long_alpha, CLIP, np.ones(size, dtype=bool))
        return calibrated
