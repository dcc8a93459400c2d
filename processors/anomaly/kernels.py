"""The kernel interface every model implements once, and the built-in numpy kernels.

A kernel judges and learns a *rank* of keys at once (see
:mod:`~otelml.processors.anomaly.ranks`): one record of each of ``size``
keys, whose per-key state is in the first ``size`` rows of the kernel's
field arrays. A **regressor** predicts the target (NaN for a key it has no
prediction for yet), and the engine scores its residual; a **deviation**
kernel gives a signed statistic of its own (NaN: none yet) that the engine
scores exactly as it scores a residual (its scale, its calibration); a
**detector** scores each record in [0, 1] itself.

A new built-in model is a kernel here (its fields, ``predict``, ``learn``)
and a River class in :mod:`~otelml.processors.anomaly.models` that runs it
on a one-row state. Set ``kind`` to ``DEVIATION`` or ``DETECTOR`` for
those kinds.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from otelml.processors.anomaly.residuals import ResidualScale
from otelml.processors.anomaly.store import Field

REGRESSOR = "regressor"
DEVIATION = "deviation"
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
    ``rank.size`` rows are the rank's keys. ``recent`` names the fields that
    follow a key's latest records, each with the long-run field that a new
    key borrowing its parent group's state starts it from; ``own`` names the
    fields such a key never borrows but starts afresh (see
    :mod:`~otelml.processors.anomaly.parents`).
    """

    kind: str = REGRESSOR
    fields: dict[str, Field] = {}
    recent: ClassVar[dict[str, str]] = {}
    own: ClassVar[tuple[str, ...]] = ()

    def predict(self, state: dict[str, np.ndarray], rank: Rank) -> np.ndarray:
        """Per key: a prediction (regressors), a statistic (deviation kernels), NaN when none; a score in [0, 1] (detectors)."""
        raise NotImplementedError

    def learn(self, state: dict[str, np.ndarray], rank: Rank, y: np.ndarray, learn: np.ndarray) -> None:
        """Learn ``y`` for the keys where ``learn`` is true."""
        raise NotImplementedError

    def levels(self, state: dict[str, np.ndarray], rank: Rank) -> tuple[np.ndarray, np.ndarray] | None:
        """The recent and long-run levels the kernel's statistic compares, per key; None if it has none.

        A deviation kernel's are in the models' units; a detector's in the target's readings (the rate
        detectors judge record times, not the models' values), which the engine puts in the models' units.
        """
        return None


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
        return state["mean"][: rank.size].copy()

    def learn(self, state, rank, y, learn):
        mean = state["mean"][: rank.size]
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


class LevelShiftKernel(Kernel):
    """How far a key's recent mean has moved from its long-run level: ``fast - slow``.

    Two exponentially weighted means of the target: ``fast`` follows every
    record, flagged or not, so that a level shift or a slow drift shows in
    it within a few records; ``slow`` learns only what the models learn, so
    it stays at the level the key had before. The engine scores the
    difference like a residual, against its own usual spread, so a key whose
    recent mean always wanders needs a larger move.

    >>> kernel = LevelShiftKernel(fast=0.5, slow=0.01)
    >>> state = {name: np.full(1, field.fill) for name, field in kernel.fields.items()}
    >>> for value in (10.0, 10.0, 20.0, 20.0):
    ...     kernel.learn(state, Rank(1, np.array([value]), np.zeros(1)), np.array([value]), np.ones(1, dtype=bool))
    >>> round(float(kernel.predict(state, Rank(1, np.zeros(1), np.zeros(1)))[0]), 2)
    7.3
    """

    kind = DEVIATION
    fields = {"fast": Field((), np.float64, np.nan), "slow": Field((), np.float64, np.nan)}
    recent = {"fast": "slow"}

    def __init__(self, fast: float, slow: float):
        self.fast = fast
        self.slow = slow

    def predict(self, state, rank):
        return state["fast"][: rank.size] - state["slow"][: rank.size]

    def levels(self, state, rank):
        return state["fast"][: rank.size].copy(), state["slow"][: rank.size].copy()

    def learn(self, state, rank, y, learn):
        fast, slow = state["fast"][: rank.size], state["slow"][: rank.size]
        np.copyto(fast, ewm_step(fast, y, self.fast))
        np.copyto(slow, ewm_step(slow, y, self.slow), where=learn)


def young_margin(n: np.ndarray, settled: float) -> np.ndarray:
    """Deviations a young key's range bound moves out, so that it flags no more often than a settled key's.

    A key of ``n`` records meets a value beyond all of them once in ``n + 1``
    records, so a young key steps past its range more often; and past the
    largest of ``n`` Gaussian values the next one's excess is of the order of
    ``1 / sqrt(2 ln n)`` deviations. Moving the bound out by
    ``ln(settled / n) / sqrt(2 ln n)`` deviations makes a chance of
    ``(1 / n) exp(-z sqrt(2 ln n))`` (stepping ``z`` past it) about that of a
    key of ``settled`` records; 0 from ``settled`` records on.

    >>> young_margin(np.array([300.0, 1000.0, 2000.0, 5000.0]), 2000).round(2).tolist()
    [0.56, 0.19, 0.0, 0.0]
    """
    n = np.maximum(n, 2.0)
    return np.maximum(np.log(max(settled, 1.0) / n), 0.0) / np.sqrt(2.0 * np.log(n))


class RangeKernel(Kernel):
    """A value beyond the range the key has known, scored by how far beyond.

    Each key keeps the lowest and highest values it has seen; from its
    ``after``-th record on (before, too few values make a range), a value more
    than ``tolerance`` of that range beyond it lies ``z`` standard deviations
    (of the key's values around its slow level) past the bound and scores
    ``z / (z + 0.5)``; within the range it scores 0. A key younger than
    ``settled`` records has seen fewer values, so its extremes say less: its
    bound lies ``ln(settled / n) / sqrt(2 ln n)`` more deviations out (see
    :func:`young_margin`). The range widens with
    every record, by at most ``widen`` times its width per record (so one
    wild value cannot make it useless at once), and its ends move back toward
    the key's level with a half-life of ``half_life`` records (so a range
    widened by a glitch, or by a past regime, recovers).

    >>> kernel = RangeKernel(tolerance=0.05, half_life=20000.0, widen=1.0, after=20, settled=20, slow=0.001, spread_alpha=0.01, clip=5.0)
    >>> state = {name: np.full(1, field.fill, field.dtype) for name, field in kernel.fields.items()}
    >>> for value in [9.0, 11.0] * 20:
    ...     kernel.learn(state, Rank(1, np.array([value]), np.zeros(1)), np.array([value]), np.ones(1, dtype=bool))
    >>> judge = lambda value: round(float(kernel.predict(state, Rank(1, np.array([value]), np.zeros(1)))[0]), 2)
    >>> judge(10.5), judge(11.05), judge(14.0)
    (0.0, 0.0, 0.85)
    """

    kind = DETECTOR
    # z past the bound at which a value scores 0.5.
    Z_HALF = 0.5

    def __init__(
        self,
        tolerance: float,
        half_life: float,
        widen: float,
        after: int,
        settled: int,
        slow: float,
        spread_alpha: float,
        clip: float,
    ):
        self.tolerance = tolerance
        self.after = after
        self.settled = settled
        self.pull = 1.0 - 0.5 ** (1.0 / half_life)
        self.widen = widen
        self.slow = slow
        self.spread = ResidualScale(spread_alpha, clip, None)
        self.fields = {
            "low": Field((), np.float64, np.nan),
            "high": Field((), np.float64, np.nan),
            "level": Field((), np.float64, np.nan),
            **{f"spread_{name}": field for name, field in self.spread.fields.items()},
        }

    def predict(self, state, rank):
        size, y = rank.size, rank.y
        low, high, n = state["low"][:size], state["high"][:size], state["spread_n"][:size]
        sd = np.sqrt(state["spread_var"][:size])
        margin = self.tolerance * (high - low) + young_margin(n, self.settled) * sd
        excess = np.maximum(np.maximum(y - (high + margin), (low - margin) - y), 0.0)
        known = (n >= self.after) & (high > low)
        z = np.where(known & (excess > 0), np.minimum(excess / np.maximum(sd, 1e-12 * (1.0 + np.abs(high))), 1e6), 0.0)
        return z / (z + self.Z_HALF)

    def learn(self, state, rank, y, learn):
        size = rank.size
        low, high, level = state["low"][:size], state["high"][:size], state["level"][:size]
        spread = {name[len("spread_") :]: array[:size] for name, array in state.items() if name.startswith("spread_")}
        width = high - low
        settled = (spread["n"] > 20) & (width > 0)
        np.copyto(high, np.where(high != high, y, np.fmax(high, np.where(settled, np.minimum(y, high + self.widen * width), y))))
        np.copyto(low, np.where(low != low, y, np.fmin(low, np.where(settled, np.maximum(y, low - self.widen * width), y))))
        known = level == level
        np.copyto(high, high - self.pull * (high - level), where=known)
        np.copyto(low, low - self.pull * (low - level), where=known)
        self.spread.learn(spread, size, np.where(known, y - level, 0.0), known)
        np.copyto(level, ewm_step(level, y, self.slow), where=learn)


class AutoregressionKernel(Kernel):
    """An online linear regression of the target on the key's own recent past.

    The features of a record are the key's last ``lags`` values (newest
    first) and exponentially weighted means of its past values (one per
    alpha of ``ewm``), each standardised by its running mean and variance;
    the weights and intercept follow stochastic gradient descent on the
    squared error with step ``lr``. This is River's ``StandardScaler |
    LinearRegression()`` (same updates, same order) on those features, run
    over a rank of keys at once. A feature the key has no value for yet
    counts as absent. Gradient descent takes a while to find a key's level,
    so a key predicts nothing before it has learned ``after`` records. A new
    key borrowing its parent group's state starts its past from the group's
    usual feature values.

    >>> kernel = AutoregressionKernel(lags=1, ewm=(0.5,), lr=0.01, after=1)
    >>> state = {name: np.full((1, *field.shape), field.fill) for name, field in kernel.fields.items()}
    >>> for value in [10.0, 12.0] * 200:
    ...     rank = Rank(1, np.array([value]), np.zeros(1))
    ...     kernel.learn(state, rank, rank.y, np.ones(1, dtype=bool))
    >>> round(float(kernel.predict(state, Rank(1, np.zeros(1), np.zeros(1)))[0]), 1)  # after a 12, a 10
    10.0
    """

    def __init__(self, lags: int, ewm: tuple[float, ...], lr: float, after: int):
        self.after = after
        self.lags = lags
        self.alphas = np.asarray(ewm, dtype=float)
        self.lr = lr
        width = lags + len(ewm)
        # past: the key's last values (newest first), then its exponentially weighted means.
        self.fields = {
            "past": Field((width,), np.float64, np.nan),
            "count": Field((width,), np.float64, 0.0),
            "mean": Field((width,), np.float64, 0.0),
            "var": Field((width,), np.float64, 0.0),
            "weights": Field((width,), np.float64, 0.0),
            "intercept": Field((), np.float64, 0.0),
            "learned": Field((), np.float64, 0.0),
        }

    recent = {"past": "mean"}

    @staticmethod
    def _standardised(features: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        # River's StandardScaler: (x - mean) / sd, 0 without variance; absent features contribute 0.
        spread = np.sqrt(var)
        return np.where((features == features) & (var > 0), (features - mean) / np.where(var > 0, spread, 1.0), 0.0)

    def predict(self, state, rank):
        size = rank.size
        z = self._standardised(state["past"][:size], state["mean"][:size], state["var"][:size])
        prediction = np.einsum("ij,ij->i", z, state["weights"][:size]) + state["intercept"][:size]
        return np.where(state["learned"][:size] >= max(self.after, 1), prediction, np.nan)

    def learn(self, state, rank, y, learn):
        size = rank.size
        features = state["past"][:size].copy()
        rows = np.flatnonzero(learn)
        if len(rows):
            x = features[rows]
            present = x == x
            count, mean, var = state["count"][rows], state["mean"][rows], state["var"][rows]
            # River's StandardScaler updates, on the features the key has; an absent one sits at the mean, unmoved.
            at = np.where(present, x, mean)
            seen = count + present
            per = 1.0 / np.maximum(seen, 1.0)
            moved = mean + (at - mean) * per
            var = var + present * ((at - mean) * (at - moved) - var) * per
            state["count"][rows], state["mean"][rows], state["var"][rows] = seen, moved, var
            z = self._standardised(x, moved, var)
            weights, intercept = state["weights"][rows], state["intercept"][rows]
            gradient = np.clip(2.0 * (np.einsum("ij,ij->i", z, weights) + intercept - y[rows]), -1e12, 1e12)
            weights = weights - self.lr * gradient[:, None] * z
            intercept = intercept - self.lr * gradient
            # A regression that ran away starts again rather than stay broken.
            broken = ~(np.isfinite(intercept) & np.isfinite(weights).all(axis=1))
            state["weights"][rows] = np.where(broken[:, None], 0.0, weights)
            state["intercept"][rows] = np.where(broken, 0.0, intercept)
            state["learned"][rows] += 1.0
        # The key's past moves on with every record, learned or not.
        past = state["past"][:size]
        lags, ewm = past[:, : self.lags], past[:, self.lags :]
        if self.lags:
            lags[:, 1:] = lags[:, :-1].copy()
            lags[:, 0] = rank.y
        np.copyto(ewm, np.where(ewm != ewm, rank.y[:, None], ewm + self.alphas * (rank.y[:, None] - ewm)))
