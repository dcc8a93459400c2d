"""The ``lull`` detector: fewer records of a key than it usually has, seen in the time its last records took.

Per key, the times of its last ``records`` records (``K``). At each record,
``x`` is the log of the time the key's last ``K`` records took (this
record's time minus the time of the ``K``-th record before it). What is
usual for the key is the long-run mean of ``x``, ``m``, and its variance
``v``. A record is judged by how far ``x`` lies above the usual in standard
deviations,

    z = (x - m) / sqrt(max(v, trigamma(K))),

scored ``z / (z + 3)`` like a residual (the default threshold 0.65 takes
5.6). For records that come at random at any rate, the time ``K`` of them
take is Gamma-distributed and its log has variance ``trigamma(K)`` (0.051
for 20), whatever the rate: that is the floor, and records that come in
clumps learn a larger ``v``. The log's upper tail is lighter than a
Gaussian's, so a quiet key flags its noise no more often than a busy one.
Only a longer time counts: more records than usual are ``burst``'s.

Why the time of the key's last records, not a count over a fixed window as
``burst`` has: a drop is only seen in the records that still come, and the
fewer they are, the longer it takes to be sure. Counting a fixed number of
records scales the window with the key's own rate (a busy key is judged over
its last seconds, a quiet one over its last hour). With ``K = 20``, a rate
that falls to a sixth is flagged after about a dozen records at the new rate.

What is usual learns from every record, each weighing the key's usual gap
between records (``half_life`` seconds of them weigh half), not its own gap:
a long gap makes a long span, and weighing each record by its own gap would
bias what is usual towards long spans. A span more than :data:`CLIP`
deviations longer than usual is learned as if it were there, one more than
:data:`SHORT_CLIP` shorter likewise (a burst's short spans would otherwise
drag the usual span down and widen the spread, and the normal pace after
it would look like a lull), and the variance learns :data:`SPREAD_SLOWER`
times more slowly than the mean, so a lull of minutes barely moves what is
usual, while a lasting change of rate becomes usual in the end (a fall to a
sixth, within about forty minutes). A key is
judged once it has learned over :data:`JUDGE` of its usual spans (about
``3 K`` records); the variance starts at twice the floor, as if
:data:`PRIOR` spans had shown it.

A key that stops altogether is judged only when its next record comes: the
processor scores records, and a silence has none.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from otelml.processors.anomaly.kernels import DETECTOR, Kernel
from otelml.processors.anomaly.residuals import Z_HALF_SCORE
from otelml.processors.anomaly.store import Field

# Deviations from the usual beyond which a longer span is learned as if it were there, and a shorter one: a
# burst's short spans, learned as at most one deviation short, can neither teach lull that spans are short
# nor widen its spread.
CLIP, SHORT_CLIP = 3.0, 1.0
# Spans' worth of weight the starting variance has, and that variance as a multiple of the floor.
PRIOR, PRIOR_VARIANCE = 5.0, 2.0
# Usual spans a key learns over before it is judged.
JUDGE = 2.0
# How many times longer the spread takes to learn than the usual span: it is the stream's clumpiness, which
# changes slowly, and a lull must not widen it while it goes on.
SPREAD_SLOWER = 10.0


def trigamma(k: int) -> float:
    """The variance of the log of a Gamma(k) variable (asymptotic series; exact to 1e-7 from k = 5).

    >>> round(trigamma(20), 4), round(trigamma(5), 4)
    (0.0513, 0.2213)
    """
    return 1.0 / k + 1.0 / (2 * k**2) + 1.0 / (6 * k**3) - 1.0 / (30 * k**5)


class LullKernel(Kernel):
    """The lull detector over a rank of keys; see the module docstring.

    >>> from otelml.processors.anomaly.kernels import Rank
    >>> kernel = LullKernel(records=20, half_life=600.0)
    >>> state = {name: np.full((1, *field.shape), field.fill, field.dtype) for name, field in kernel.fields.items()}
    >>> def step(when):
    ...     rank = Rank(1, np.zeros(1), np.array([when]))
    ...     score = float(kernel.predict(state, rank)[0])
    ...     kernel.learn(state, rank, np.zeros(1), np.ones(1, dtype=bool))
    ...     return score
    >>> rng = np.random.default_rng(1)
    >>> times = np.cumsum(rng.exponential(1.0, 3000))  # one record a second, at random
    >>> usual = [step(when) for when in times]
    >>> round(max(usual), 2)
    0.5
    >>> start = times[-1]
    >>> lull = [step(start + when) for when in np.cumsum(rng.exponential(6.0, 15))]  # then one every six seconds
    >>> [round(score, 2) for score in lull[2::3]]  # after 3, 6, 9, 12 and 15 records
    [0.45, 0.48, 0.61, 0.66, 0.68]
    """

    kind = DETECTOR
    # A key borrowing its parent group's state counts its own records: a group's usual span is not one key's.
    own: ClassVar[tuple[str, ...]] = ("times", "mean", "variance", "learned")

    def __init__(self, records: int, half_life: float):
        self.records = records
        self.time_constant = half_life / np.log(2.0)
        self.floor = trigamma(records)
        self.fields = {
            "times": Field((records,), np.float64, np.nan),
            "mean": Field((), np.float64, np.nan),
            "variance": Field((), np.float64, PRIOR_VARIANCE * self.floor),
            "learned": Field((), np.float64, 0.0),
        }

    def _span(self, state: dict, rank) -> np.ndarray:
        """The log of the time each key's last ``records`` records took, this one included; NaN until it has them."""
        oldest = state["times"][: rank.size, 0]
        return np.log(np.maximum(rank.times - oldest, 1e-9))

    def predict(self, state, rank):
        size = rank.size
        x = self._span(state, rank)
        z = np.maximum(x - state["mean"][:size], 0.0) / np.sqrt(np.maximum(state["variance"][:size], self.floor))
        judged = state["learned"][:size] >= JUDGE * self.records
        return np.where(judged & (z == z), z / (z + Z_HALF_SCORE), 0.0)

    def levels(self, state, rank):
        """The key's rate over its last ``records`` records, and its usual rate over as many (records per second)."""
        size = rank.size
        return self.records / np.exp(self._span(state, rank)), self.records / np.exp(state["mean"][:size])

    def learn(self, state, rank, y, learn):
        """Every record is learned (see the module docstring); ``learn`` is not consulted."""
        size = rank.size
        ring = state["times"][:size]
        x = self._span(state, rank)
        mean, variance, learned = state["mean"][:size], state["variance"][:size], state["learned"][:size]
        spans = x == x
        started = spans & (mean == mean)
        # Each record weighs the key's usual gap between records, not its own: a record after a long gap has a
        # long span, and weighing it by that gap would bias what is usual towards long spans. A young key's
        # first spans make an ordinary average.
        usual_gap = np.exp(np.where(started, mean, 0.0)) / self.records
        forgetting = -np.expm1(-usual_gap / self.time_constant)
        count = learned + 1.0
        spread = np.sqrt(np.maximum(variance, self.floor))
        deviation = np.where(started, np.clip(x - mean, -SHORT_CLIP * spread, CLIP * spread), 0.0)
        spread_weight = np.maximum(forgetting / SPREAD_SLOWER, 1.0 / (count + PRIOR * self.records))
        np.copyto(variance, variance + spread_weight * (deviation * deviation - variance), where=started)
        np.copyto(mean, np.where(started, mean + np.maximum(forgetting, 1.0 / count) * deviation, x), where=spans)
        np.copyto(learned, count, where=spans)
        ring[:, :-1] = ring[:, 1:]
        ring[:, -1] = rank.times
