"""The calibrated score: a model's surprise judged against that key's own typical extremes.

A deviation of ``z`` standard deviations means different things on
different series: on a quiet, Gaussian-like series nine deviations almost
never happen; on a spiky one (disk writes, request bursts, tweet volumes)
they happen every day. So per key and model the calibration keeps a running
estimate of a high quantile of that key's own ``z`` (``quantile``, 0.999 by
default: the surprise it reaches once in a thousand records), and scores

    z / (z + 3 * max(1, q / reference))

where ``reference`` is the same quantile of ``|z|`` for Gaussian noise
(3.29 for 0.999). A key whose tail is no heavier than Gaussian keeps the
plain ``z / (z + 3)`` (three deviations score 0.5, nine 0.75); a key whose
usual extremes are twice as large needs twice the surprise for the same
score. So one threshold serves quiet and spiky keys alike, and a quiet key
is not pushed to flag its own noise, as a purely relative score would.

The quantile is tracked by stochastic approximation with multiplicative
steps (up by ``1 + rate * quantile`` when ``z`` exceeds it, down by
``1 - rate * (1 - quantile)`` otherwise), so one wild value moves it by a
bounded factor and it needs no memory of past values. That converges over
thousands of records; so that a spiky key is not flagged for its spikes
right after its warmup, during the warmup the estimate is instead the
largest ``z`` seen so far, rising by at most :data:`EARLY_GROWTH` per record
(a single glitch still moves it only that much).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

import numpy as np

from otelml.processors.anomaly.store import Field

if TYPE_CHECKING:
    from otelml.processors.anomaly.config import CalibrationConfig

Z_HALF_SCORE = 3.0
# During warmup, the most the tail estimate grows in one record.
EARLY_GROWTH = 1.5


def gaussian_reference(quantile: float) -> float:
    """The ``quantile`` of ``|z|`` when ``z`` is standard normal.

    >>> round(gaussian_reference(0.999), 2)
    3.29
    """
    return statistics.NormalDist().inv_cdf(0.5 + quantile / 2.0)


class Calibration:
    """Scores ``z`` against each key's own extreme quantile, a rank of keys at a time.

    Examples
    --------
    The same nine deviations, on a key whose extremes are Gaussian and on
    one whose extremes are ten deviations:

    >>> from otelml.processors.anomaly.config import CalibrationConfig
    >>> calibration = Calibration(CalibrationConfig(), warmup=100)
    >>> quiet, spiky = ({name: np.full(1, field.fill) for name, field in calibration.fields.items()} for _ in range(2))
    >>> spiky["tail"][:] = 10.0
    >>> nine = np.array([9.0])
    >>> never, settled = np.zeros(1, bool), np.array([1000.0])
    >>> round(float(calibration.score(quiet, 1, nine, never, settled)[0]), 2)
    0.75
    >>> round(float(calibration.score(spiky, 1, nine, never, settled)[0]), 2)
    0.5
    """

    def __init__(self, config: CalibrationConfig, warmup: int):
        self.warmup = warmup
        self.quantile = config.quantile
        self.rate = config.rate
        self.reference = gaussian_reference(config.quantile)
        self.fields = {"tail": Field((), np.float64, self.reference)}

    def score(self, state: dict, size: int, z: np.ndarray, learn: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """The calibrated scores of a rank's ``z``; then each key's quantile learns them where ``learn``.

        ``seen`` is how many values each key's scale had seen before these.
        """
        tail = state["tail"][:size]
        half = Z_HALF_SCORE * np.maximum(1.0, tail / self.reference)
        score = z / (z + half)
        moved = tail * np.where(z > tail, 1.0 + self.rate * self.quantile, 1.0 - self.rate * (1.0 - self.quantile))
        early = seen <= self.warmup
        if early.any():
            moved = np.where(early, np.maximum(tail, np.minimum(z, tail * EARLY_GROWTH)), moved)
        np.copyto(tail, moved, where=learn)
        return score
