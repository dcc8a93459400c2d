"""The ``burst`` detector: more records of a key in its last seconds than it usually has.

Per key, a count of its records that decays with record time (each record
adds one; the count falls by ``e`` every ``window`` seconds), ``N``: the
key's records over about its last ``window`` seconds. What is usual for the
key is the long-run mean of that count at its records, ``mu``, and its
dispersion ``D`` (its variance over its mean: 1/2 for records that come at
random, more for records that come in clumps). A record is judged by how far
its count lies above the usual one in standard deviations,

    z = (N - mu) / sqrt(max(D, 1/2) * max(mu, 5)),

scored ``z / (z + 3)`` like a residual (three deviations score 0.5; the
default threshold 0.65 takes 5.6). The floors keep a quiet key (a message
an hour) from calling a handful of lines a burst: it takes about ten more
records than usual within the window. Only excess counts: a drop in rate
is the regressors' to judge.

Why a count with a Poisson scale, rather than the spread of the ``rate``
target: the scale of a count follows from its mean, so a burst cannot teach
the detector, while it goes on, that bursts are usual for the key (a spread
learned from the values themselves widens with the burst); and a rate
smoothed over a few records is too noisy to show a tenfold burst of a slow
message (one a second) clearly, while ten seconds of such a burst are a
hundred more records than usual.

The usual count and dispersion learn from every record, flagged or not,
weighted by record time, not by record (a burst's many records weigh what
its seconds do): half of what is usual is from the last ``half_life``
seconds, and a young key's first seconds make an ordinary time average. A
count more than :data:`CLIP` deviations above the usual one is learned as
if it were there: a burst of seconds barely moves what is usual, while a
lasting change of rate becomes usual within minutes (a rate that triples for
good is flagged for about three). A key is judged once it has logged for
``4 * window`` seconds (its count settles over the first two of them, and
the usual count learns over the other two); the dispersion starts at 1, as
if :data:`PRIOR` windows had shown it, so a young key's first seconds cannot
make it small.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from otelml.processors.anomaly.kernels import DETECTOR, Kernel
from otelml.processors.anomaly.residuals import Z_HALF_SCORE
from otelml.processors.anomaly.store import Field

# Deviations above the usual count beyond which a count is learned as if it were there.
CLIP = 3.0
# Windows' worth of weight the starting dispersion (1) has.
PRIOR = 5.0
# The least dispersion a count has: that of records coming at random (a Poisson stream).
RANDOM_DISPERSION = 0.5
# The least usual count a deviation is measured at: a burst is at least ten or so records more than usual.
LEAST_COUNT = 5.0
# Windows of a key's records before its count is learned (it has settled), and before it is judged.
SETTLE, JUDGE = 2.0, 4.0


class BurstKernel(Kernel):
    """The burst detector over a rank of keys; see the module docstring.

    >>> from otelml.processors.anomaly.kernels import Rank
    >>> kernel = BurstKernel(window=10.0, half_life=600.0)
    >>> state = {name: np.full(1, field.fill, field.dtype) for name, field in kernel.fields.items()}
    >>> def step(when):
    ...     rank = Rank(1, np.zeros(1), np.array([when]))
    ...     score = float(kernel.predict(state, rank)[0])
    ...     kernel.learn(state, rank, np.zeros(1), np.ones(1, dtype=bool))
    ...     return score
    >>> arrivals = np.cumsum(np.random.default_rng(1).exponential(1.0, 600))  # one record a second, at random
    >>> usual = [step(when) for when in arrivals]
    >>> round(max(usual), 2)
    0.53
    >>> burst = [step(arrivals[-1] + when) for when in np.arange(0.1, 4.05, 0.1)]  # ten a second for four seconds
    >>> [round(score, 2) for score in burst[9::10]]  # after 1, 2, 3 and 4 seconds
    [0.53, 0.69, 0.76, 0.8]
    """

    kind = DETECTOR
    fields: dict[str, Field] = {
        "count": Field((), np.float64, 0.0),
        "last": Field((), np.float64, np.nan),
        "first": Field((), np.float64, np.nan),
        "mean": Field((), np.float64, 0.0),
        "dispersion": Field((), np.float64, 1.0),
        "learned": Field((), np.float64, 0.0),
    }
    # A key borrowing its parent group's state counts its own records: a group's usual count is not one key's.
    own: ClassVar[tuple[str, ...]] = tuple(fields)

    def __init__(self, window: float, half_life: float):
        self.window = window
        self.time_constant = half_life / np.log(2.0)

    def _count(self, state: dict, rank) -> np.ndarray:
        """Each key's count with its record of the rank."""
        size = rank.size
        elapsed = np.maximum(rank.times - state["last"][:size], 0.0)
        return np.where(elapsed == elapsed, state["count"][:size] * np.exp(-elapsed / self.window), 0.0) + 1.0

    def predict(self, state, rank):
        size = rank.size
        count = self._count(state, rank)
        mean, dispersion = state["mean"][:size], state["dispersion"][:size]
        judged = rank.times - state["first"][:size] >= JUDGE * self.window
        z = np.maximum(count - mean, 0.0) / _spread(mean, dispersion)
        return np.where(judged, z / (z + Z_HALF_SCORE), 0.0)

    def levels(self, state, rank):
        """The key's rate over about its last ``window`` seconds, and its usual rate (records per second)."""
        return self._count(state, rank) / self.window, state["mean"][: rank.size] / self.window

    def learn(self, state, rank, y, learn):
        """Every record counts and is learned (see the module docstring); ``learn`` is not consulted."""
        size, times = rank.size, rank.times
        count = self._count(state, rank)
        last, first = state["last"][:size], state["first"][:size]
        mean, dispersion, learned = state["mean"][:size], state["dispersion"][:size], state["learned"][:size]
        elapsed = np.where(last == last, np.maximum(times - last, 0.0), 0.0)
        # Seconds of the key's settled counts, this record's included.
        settled = times - np.where(first == first, first, times) - SETTLE * self.window
        learns = settled >= 0
        # Weights by record time, not by record: a burst's many records weigh what its seconds do. A young
        # key's first settled seconds make an ordinary time average.
        forgetting = -np.expm1(-elapsed / self.time_constant)
        by_time = np.maximum(forgetting, elapsed / np.maximum(settled, elapsed + 1e-9))
        started = learned > 0
        bound = np.where(started, mean + CLIP * _spread(mean, dispersion), np.inf)
        deviation = np.where(started, np.minimum(count, bound) - mean, 0.0)
        ratio = deviation * deviation / np.maximum(mean, LEAST_COUNT)
        spread_weight = np.maximum(forgetting, elapsed / np.maximum(settled + PRIOR * self.window, 1e-9))
        np.copyto(dispersion, dispersion + spread_weight * (ratio - dispersion), where=learns & started)
        np.copyto(mean, np.where(started, mean + by_time * deviation, count), where=learns)
        np.copyto(learned, learned + 1.0, where=learns)
        np.copyto(state["count"][:size], count)
        np.copyto(first, np.where(first == first, first, times))
        np.copyto(last, np.where(last == last, np.maximum(last, times), times))


def _spread(mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """The standard deviation of a count whose usual value is ``mean``, at the key's dispersion."""
    return np.sqrt(np.maximum(dispersion, RANDOM_DISPERSION) * np.maximum(mean, LEAST_COUNT))
