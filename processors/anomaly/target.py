"""The target, computed once per batch before scoring: its transform, its unit, and the record rate.

The batch reader (:mod:`~otelml.processors.anomaly.extract`) reads each
record's raw value; here it becomes the value the models see: ``log``
(``log1p`` of a duration in ms, keeping the sign; the natural log of a
rate, which can be far below one per second), or ``none``; ``auto`` takes
the log for ``duration`` and ``rate``. Values beyond
:data:`~otelml.processors.anomaly.residuals.LARGEST` are held there, so no
later square overflows.

``rate`` is the key's records per second from record times, smoothed over
the last few records: per key, the last record time and the smoothed gap
between records. A key's first record has no rate (it is passed on
unscored), and nor has a record at the same time as the key's previous
ones before any gap was seen. ``novelty`` is how rare the record's log
template is for its key (:mod:`~otelml.processors.anomaly.novelty`).
"""

from __future__ import annotations

import math

import numpy as np

from otelml.processors.anomaly.novelty import Novelty
from otelml.processors.anomaly.residuals import LARGEST
from otelml.processors.anomaly.store import Field
from otelml.references import DURATION, NOVELTY, RATE, Reference

RATE_SMOOTHING = 0.3
UNITS = {DURATION: "ms", RATE: "1/s"}


def signed_log(values: np.ndarray) -> np.ndarray:
    """``log1p`` that keeps the sign, so that negative readings stay usable.

    >>> signed_log(np.array([0.0, -math.e + 1])).round(6).tolist()
    [0.0, -1.0]
    """
    # math.log1p: numpy's differs in the last bit, and earlier checkpoints were made with this one.
    magnitudes = np.fromiter(map(math.log1p, np.abs(values).tolist()), float, len(values))
    return np.copysign(magnitudes, values)


def signed_exp(values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`signed_log`; NaN where the result would overflow.

    >>> signed_exp(np.array([0.0, -1.0, 1000.0])).round(6).tolist()
    [0.0, -1.718282, nan]
    """
    with np.errstate(over="ignore"):
        result = np.copysign(np.expm1(np.abs(values)), values)
    return np.where(np.isfinite(result), result, np.nan)


def plain_exp(values: np.ndarray) -> np.ndarray:
    """:func:`numpy.exp`, NaN where the result would overflow."""
    with np.errstate(over="ignore"):
        result = np.exp(values)
    return np.where(np.isfinite(result), result, np.nan)


class Target:
    """What a processor scores, and how.

    Parameters
    ----------
    reference
        The parsed target reference.
    transform
        ``auto``, ``log`` or ``none``.
    rate_feature
        River models read the rate as a feature, so it is tracked even when it is not the target.

    Examples
    --------
    >>> from otelml.references import parse_target
    >>> target = Target(parse_target("rate"), "auto")
    >>> state = {name: np.full(1, field.fill) for name, field in target.fields.items()}
    >>> [float(target.step_rate(state, 1, np.array([when]))[0]) for when in (0.0, 0.5, 1.0)]
    [nan, 2.0, 2.0]
    >>> target.unit, target.transform(np.array([2.0])).round(3).tolist()
    ('1/s', [0.693])
    """

    def __init__(self, reference: Reference, transform: str, rate_feature: bool = False):
        self.reference = reference
        self.name = reference.text
        self.is_rate = reference.field == RATE
        self.log = transform == "log" or (transform == "auto" and reference.field in (DURATION, RATE))
        self.unit = UNITS.get(reference.field, "")
        self.tracks_rate = self.is_rate or rate_feature
        self.fields = (
            {"last_time": Field((), np.float64, np.nan), "gap": Field((), np.float64, np.nan)} if self.tracks_rate else {}
        )
        self.novelty = Novelty() if reference.field == NOVELTY else None
        if self.novelty is not None:
            self.fields.update({f"novelty_{name}": field for name, field in self.novelty.fields.items()})

    def transform(self, actual: np.ndarray) -> np.ndarray:
        """The models' values of ``actual`` readings."""
        if not self.log:
            return np.clip(actual, -LARGEST, LARGEST)
        if self.is_rate:
            return np.log(actual)
        return signed_log(np.clip(actual, -LARGEST, LARGEST))

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Readings of models' values (expected values, ranges); NaN where they overflow."""
        if not self.log:
            return values
        return plain_exp(values) if self.is_rate else signed_exp(values)

    def step_novelty(self, state: dict, size: int, codes: np.ndarray) -> np.ndarray:
        """The novelty of each key's record of a rank (see :mod:`~otelml.processors.anomaly.novelty`); then the key counts it."""
        assert self.novelty is not None, "only the novelty target counts templates"
        return self.novelty.step({name: state[f"novelty_{name}"] for name in self.novelty.fields}, size, codes)

    def step_rate(self, state: dict, size: int, times: np.ndarray) -> np.ndarray:
        """The rate at each key's record of a rank (NaN when it has none, inf for no gap yet); then the key moves on."""
        last, gap = state["last_time"][:size], state["gap"][:size]
        current = np.maximum(times - last, 0.0)
        smoothed = np.where(gap != gap, current, gap + RATE_SMOOTHING * (current - gap))
        np.copyto(gap, smoothed)
        np.copyto(last, np.where(last != last, times, np.maximum(last, times)))
        with np.errstate(divide="ignore"):
            return 1.0 / smoothed
