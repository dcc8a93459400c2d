"""Predicted incidents: when a key's trend says trouble is coming, and how soon.

Without ``trend.limit``, the score's trend predicts: a clearly rising line
(see :data:`CLEAR_TREND`), below the threshold now, that reaches it within
the forecast's reach (the horizon, or less when the trend window reaches
back less far). With a limit, the target's own trend does, in the target's
units: a clear line that crosses the limit within the reach. Either way the time written is the line's own time
to the crossing, never the configured horizon.

The processor adds the other condition: a key with an incident open has no
prediction, since what it would predict is already there.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, TypedDict

import numpy as np

from otelml.conventions import CROSSING_SECONDS, LIMIT, TARGET_FORECAST
from otelml.processors.anomaly.trend import Trends

# A trend predicts only when its slope is at least this many standard errors from flat: a noisy
# series whose window happens to tilt is no forecast.
CLEAR_TREND = 4.0


class ForecastValues(TypedDict, total=False):
    """One record's prediction, under the names of the alert's details (``limit`` and ``target_forecast`` for a limit)."""

    crossing_seconds: float
    limit: float
    target_forecast: float


@dataclasses.dataclass
class Forecast:
    """Per record, in batch order: whether its trend crosses within the reach, and in how many seconds (NaN: not).

    ``limit`` (the limit crossed) and ``target_forecast`` (the target's line
    at the reach) are there for a limit's forecast only.

    Examples
    --------
    >>> ramp = Trends(now=np.array([74.0, 74.0, 79.0]), slope=np.array([0.01, 0.01, -0.01]), forecast=np.zeros(3),
    ...               points=np.full(3, 60.0), reach=np.array([900.0, 300.0, 900.0]), t=np.array([12.0, 12.0, -12.0]))
    >>> forecast = Forecast.of_limit(ramp, above=80.0, below=None)
    >>> forecast.crosses.tolist(), forecast.seconds.round().tolist()
    ([True, False, False], [600.0, nan, nan])
    >>> forecast.details(0)
    [('otelml.limit.crossing_seconds', 600.0), ('otelml.limit', 80.0), ('otelml.target.forecast', 83.0)]
    """

    crosses: np.ndarray
    seconds: np.ndarray
    limit: np.ndarray | None = None
    target_forecast: np.ndarray | None = None

    @classmethod
    def of_score(cls, trends: Trends, threshold: np.ndarray, ready: np.ndarray) -> Forecast:
        """The score's line rising clearly (see :data:`CLEAR_TREND`) to ``threshold`` within the reach, for keys past their warmup."""
        with np.errstate(divide="ignore", invalid="ignore"):
            seconds = (threshold - trends.now) / trends.slope
        crosses = ready & (trends.t >= CLEAR_TREND) & (trends.now < threshold) & (seconds <= trends.reach)
        return cls(crosses, np.where(crosses, seconds, np.nan))

    @classmethod
    def of_limit(cls, trends: Trends, above: float | None, below: float | None) -> Forecast:
        """The target's line reaching ``above`` (rising) or ``below`` (falling) within the reach, whichever first."""
        seconds = np.full(len(trends.now), np.inf)
        limit = np.full(len(trends.now), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            for level, heading in ((above, 1.0), (below, -1.0)):
                if level is None:
                    continue
                approaching = (heading * trends.slope > 0) & (heading * (level - trends.now) > 0)
                until = np.where(approaching, (level - trends.now) / trends.slope, np.inf)
                sooner = until < seconds
                seconds = np.where(sooner, until, seconds)
                limit = np.where(sooner, level, limit)
        crosses = (seconds <= trends.reach) & (np.abs(trends.t) >= CLEAR_TREND)
        return cls(crosses, np.where(crosses, seconds, np.nan), limit, trends.now + trends.slope * trends.reach)

    def values(self, index: int) -> ForecastValues:
        """Record ``index``'s prediction: ``crossing_seconds``, and ``limit`` and ``target_forecast`` for a limit."""
        seconds = float(self.seconds[index])
        if self.limit is None or self.target_forecast is None:
            return ForecastValues(crossing_seconds=seconds)
        return ForecastValues(
            crossing_seconds=seconds, limit=float(self.limit[index]), target_forecast=float(self.target_forecast[index])
        )

    def details(self, index: int) -> list[tuple[str, float]]:
        """The same, as alert details: attribute name and value."""
        values = self.values(index)
        return [(attribute, values[name]) for name, attribute in _ATTRIBUTES.items() if name in values]


_ATTRIBUTES: dict[Literal["crossing_seconds", "limit", "target_forecast"], str] = {
    "crossing_seconds": CROSSING_SECONDS,
    "limit": LIMIT,
    "target_forecast": TARGET_FORECAST,
}
