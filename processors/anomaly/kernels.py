"""The kernel interface every model implements once, and the built-in numpy kernels.

A kernel judges and learns a *rank* of keys at once (see
:mod:`~otelml.processors.anomaly.ranks`): one record of each of ``size``
keys, whose per-key state is in the first ``size`` rows of the kernel's
field arrays. A **regressor** predicts the target (NaN for a key it has no
prediction for yet); a **detector** scores each record in [0, 1] itself.

A new built-in model is a kernel here (its fields, ``predict``, ``learn``)
and a River class in :mod:`~otelml.processors.anomaly.models` that runs it
on a one-row state. For a detector, set ``kind = DETECTOR`` and return
scores from ``predict``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from otelml.processors.anomaly.store import Field

REGRESSOR = "regressor"
DETECTOR = "detector"
SECONDS_PER_DAY = 86400.0
# 1970-01-01 was a Thursday: shift so that Monday is day 0.
EPOCH_WEEKDAY = 3
PERIOD_BINS = {"day": 24, "week": 168}


@dataclasses.dataclass
class Rank:
    """One record of each of ``size`` keys.

    ``y`` is the target in the models' units, ``times`` the record times
    (seconds since the epoch), ``features`` one feature dict per key when a
    River model reads them (else None).
    """

    size: int
    y: np.ndarray
    times: np.ndarray
    features: list[dict] | None = None


class Kernel:
    """A model over a rank of keys; see the module docstring.

    ``fields`` declares the per-key state (names local to the kernel); the
    ``state`` passed to each call maps those names to arrays whose first
    ``rank.size`` rows are the rank's keys.
    """

    kind: ClassVar[str] = REGRESSOR
    fields: dict[str, Field] = {}

    def predict(self, state: dict[str, np.ndarray], rank: Rank) -> np.ndarray:
        """Regressors: a prediction per key (NaN when none); detectors: a score per key in [0, 1]."""
        raise NotImplementedError

    def learn(self, state: dict[str, np.ndarray], rank: Rank, y: np.ndarray, learn: np.ndarray) -> None:
        """Learn ``y`` for the keys where ``learn`` is true."""
        raise NotImplementedError


def one_row_state(kernel: Kernel) -> dict[str, np.ndarray]:
    """A single key's state for ``kernel``, as the River classes keep it."""
    state = {}
    for name, field in kernel.fields.items():
        state[name] = np.empty((1, *field.shape), dtype=field.dtype)
        state[name][...] = field.fill
    return state


def calendar_bins(times: np.ndarray, period: str) -> np.ndarray:
    """The hour of the day (period ``day``) or of the week (``week``, Monday 00h = 0) of each time, in UTC.

    >>> calendar_bins(np.array([0.0, 3600.0 * 25]), "day").tolist(), calendar_bins(np.array([0.0]), "week").tolist()
    ([0, 1], [72])
    """
    day_fraction = np.remainder(times, SECONDS_PER_DAY) / SECONDS_PER_DAY
    hour = (day_fraction * 24).astype(np.intp)
    if period == "day":
        return hour
    weekday = (np.floor_divide(times, SECONDS_PER_DAY).astype(np.intp) + EPOCH_WEEKDAY) % 7
    return weekday * 24 + hour


def ewm_step(current: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """The next exponentially weighted mean; an empty (NaN) mean starts at ``y``."""
    return np.where(current != current, y, current + alpha * (y - current))


class EwmKernel(Kernel):
    """An exponentially weighted mean of the target, NaN before the first value.

    >>> kernel = EwmKernel(alpha=0.5)
    >>> state = {"mean": np.full(2, np.nan)}
    >>> rank = Rank(2, np.array([10.0, 4.0]), np.zeros(2))
    >>> kernel.learn(state, rank, rank.y, np.array([True, False]))
    >>> kernel.learn(state, rank, np.array([20.0, 4.0]), np.array([True, True]))
    >>> kernel.predict(state, rank).tolist()
    [15.0, 4.0]
    """

    fields = {"mean": Field((), np.float64, np.nan)}

    def __init__(self, alpha: float):
        self.alpha = alpha

    def predict(self, state, rank):
        return state["mean"][:rank.size].copy()

    def learn(self, state, rank, y, learn):
        mean = state["mean"][:rank.size]
        np.copyto(mean, ewm_step(mean, y, self.alpha), where=learn)


class ProfileKernel(Kernel):
    """One exponentially weighted mean per hour of the day (or week), NaN while a bin is empty.

    >>> kernel = ProfileKernel("day", alpha=0.5)
    >>> state = {"profile": np.full((1, 24), np.nan)}
    >>> nine = Rank(1, np.array([80.0]), np.array([9 * 3600.0]))
    >>> kernel.learn(state, nine, nine.y, np.array([True]))
    >>> kernel.predict(state, nine).tolist(), kernel.predict(state, Rank(1, nine.y, np.array([10 * 3600.0]))).tolist()
    ([80.0], [nan])
    """

    def __init__(self, period: str, alpha: float):
        self.period = period
        self.alpha = alpha
        self.fields = {"profile": Field((PERIOD_BINS[period],), np.float64, np.nan)}

    def predict(self, state, rank):
        return state["profile"][np.arange(rank.size), calendar_bins(rank.times, self.period)]

    def learn(self, state, rank, y, learn):
        rows = np.flatnonzero(learn)
        profile, bins = state["profile"], calendar_bins(rank.times[rows], self.period)
        profile[rows, bins] = ewm_step(profile[rows, bins], y[rows], self.alpha)
