"""What the models see besides the key: the feature dict ``x`` of one record.

Every feature comes from the record itself or from the key's own past, and
time features use the record's timestamp, so a replay computes the same
values as the live run. Only features some model reads are computed.

Names:

- ``hour_sin``, ``hour_cos``, ``weekday_sin``, ``weekday_cos``: time of day and
  day of week on the unit circle (UTC), so 23:59 is next to 00:00;
- ``hour`` (0-23) and ``hour_of_week`` (0-167, Monday 00h = 0): calendar bins;
- ``lag_1`` ... ``lag_n``: the key's previous target values, newest first;
- ``ewm_<alpha>``: exponentially weighted means of the key's past targets;
- ``rate``: the key's records per second (exponentially weighted);
- ``error``: 1 when the span status is ERROR or the log severity is ERROR or worse;
- ``attributes.<name>``: a numeric record attribute (absent when missing).
"""

from __future__ import annotations

import math

import numpy as np

from otelml.configmodel import ComponentConfig

SECONDS_PER_DAY = 86400.0
TWO_PI = 2.0 * math.pi
# 1970-01-01 was a Thursday: shift so that Monday is day 0.
EPOCH_WEEKDAY = 3
RATE_SMOOTHING = 0.3
CALENDAR_INPUTS = frozenset({"hour", "hour_of_week"})


class FeaturesConfig(ComponentConfig):
    time: bool = True
    lags: int = 2
    ewm: list[float] = [0.3, 0.03]
    rate: bool = True
    error: bool = True
    attributes: list[str] = []

    def validate_config(self) -> list[str]:
        problems = []
        if not 0 <= self.lags <= 32:
            problems.append("lags: must be between 0 and 32")
        problems += [f"ewm::{i}: must be in (0, 1]" for i, alpha in enumerate(self.ewm) if not 0 < alpha <= 1]
        problems += [f"attributes::{i}: must not be empty" for i, name in enumerate(self.attributes) if not name]
        return problems


class RateTracker:
    """A key's records per second, from record times, smoothed over the last few records.

    >>> rate = RateTracker()
    >>> for when in (0.0, 0.5, 1.0):
    ...     rate.observe(when)
    >>> rate.peek(1.5)
    2.0
    """

    __slots__ = ("last_time", "gap")

    def __init__(self):
        self.last_time: float | None = None
        self.gap: float | None = None

    def _gap_until(self, when: float) -> float | None:
        if self.last_time is None:
            return None
        current = max(when - self.last_time, 0.0)
        return current if self.gap is None else self.gap + RATE_SMOOTHING * (current - self.gap)

    def peek(self, when: float) -> float | None:
        """The rate counting a record at ``when``; None before the key's second record."""
        gap = self._gap_until(when)
        if gap is None:
            return None
        return 1.0 / gap if gap > 0 else math.inf

    def observe(self, when: float) -> None:
        self.gap = self._gap_until(when)
        self.last_time = when if self.last_time is None else max(self.last_time, when)


class FeatureState:
    """A key's recent past, as far as features need it."""

    __slots__ = ("lags", "ewm", "rate")

    def __init__(self, ewm_count: int):
        self.lags: list[float] = []
        self.ewm: list[float | None] = [None] * ewm_count
        self.rate = RateTracker()


def calendar_bins(times: np.ndarray, period: str) -> np.ndarray:
    """The ``hour`` (period ``day``) or ``hour_of_week`` (``week``) of each time, as :meth:`FeatureBuilder.build` gives it.

    >>> calendar_bins(np.array([0.0, 3600.0 * 25]), "day").tolist(), calendar_bins(np.array([0.0]), "week").tolist()
    ([0, 1], [72])
    """
    day_fraction = np.remainder(times, SECONDS_PER_DAY) / SECONDS_PER_DAY
    hour = (day_fraction * 24).astype(np.intp)
    if period == "day":
        return hour
    weekday = (np.floor_divide(times, SECONDS_PER_DAY).astype(np.intp) + EPOCH_WEEKDAY) % 7
    return weekday * 24 + hour


class FeatureBuilder:
    """Builds ``x`` for one record and keeps each key's :class:`FeatureState`.

    Parameters
    ----------
    config
        Which feature groups River models see; ``None`` when no model reads them.
    inputs
        Extra feature names built-in models read (``hour``, ``hour_of_week``).

    Examples
    --------
    >>> builder = FeatureBuilder(FeaturesConfig(lags=1, ewm=[0.5], attributes=[]), set())
    >>> state = builder.new_state()
    >>> x = builder.build(state, 0.0, False, {})
    >>> builder.learn(state, 4.0, 0.0)
    >>> x = builder.build(state, 2.0, True, {})
    >>> x["lag_1"], x["ewm_0.5"], x["rate"], x["error"]
    (4.0, 4.0, 0.5, 1.0)
    """

    def __init__(self, config: FeaturesConfig | None, inputs: set[str]):
        self.config = config
        self.calendar = sorted(inputs & CALENDAR_INPUTS)
        self.time = bool(config and config.time)
        self.lags = config.lags if config else 0
        self.ewm = list(config.ewm) if config else []
        self.ewm_names = [f"ewm_{alpha:g}" for alpha in self.ewm]
        self.rate = bool(config and config.rate)
        self.error = bool(config and config.error)
        self.attributes = tuple(config.attributes) if config else ()
        self.stateful = bool(self.lags or self.ewm or self.rate)

    @property
    def empty(self) -> bool:
        """True when no model reads any feature, so ``x`` need not be built."""
        return not (self.config or self.calendar)

    def new_state(self) -> FeatureState | None:
        return FeatureState(len(self.ewm)) if self.stateful else None

    def build(self, state: FeatureState | None, when: float, error: bool, attributes: dict) -> dict:
        x = {}
        if self.calendar or self.time:
            day_fraction = (when % SECONDS_PER_DAY) / SECONDS_PER_DAY
            weekday = (int(when // SECONDS_PER_DAY) + EPOCH_WEEKDAY) % 7
            if self.time:
                x["hour_sin"] = math.sin(TWO_PI * day_fraction)
                x["hour_cos"] = math.cos(TWO_PI * day_fraction)
                x["weekday_sin"] = math.sin(TWO_PI * weekday / 7)
                x["weekday_cos"] = math.cos(TWO_PI * weekday / 7)
            for name in self.calendar:
                hour = int(day_fraction * 24)
                x[name] = hour if name == "hour" else weekday * 24 + hour
        if state is not None:
            for index, value in enumerate(state.lags):
                x[f"lag_{index + 1}"] = value
            for name, value in zip(self.ewm_names, state.ewm):
                if value is not None:
                    x[name] = value
            if self.rate:
                rate = state.rate.peek(when)
                x["rate"] = rate if rate is not None and math.isfinite(rate) else 0.0
        if self.error:
            x["error"] = 1.0 if error else 0.0
        for name in self.attributes:
            value = attributes.get(name)
            if value is not None:
                x[f"attributes.{name}"] = value
        return x

    def learn(self, state: FeatureState | None, value: float, when: float) -> None:
        """Move the key's past on by one record (after it was scored)."""
        if state is None:
            return
        if self.lags:
            state.lags.insert(0, value)
            del state.lags[self.lags:]
        for index, alpha in enumerate(self.ewm):
            previous = state.ewm[index]
            state.ewm[index] = value if previous is None else previous + alpha * (value - previous)
        state.rate.observe(when)

