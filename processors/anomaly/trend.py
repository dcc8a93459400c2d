"""Least-squares lines over each key's recent values, for a whole batch at once.

For every record, a line is fitted over the key's ``window`` most recent
values of a series (the record's own included) against record time, and
read at ``now + horizon``. The forecast never looks further ahead than the
window reaches back, since a line says nothing about times farther away
than the data it was fitted on. Several series (the score's, and others a
caller adds, e.g. the target's) share one history of times.

Each record's window holds exactly the same numbers however the stream was
cut into batches, so a replay gives bit-identical forecasts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from otelml.processors.anomaly.ranks import Ranks
from otelml.processors.anomaly.store import Field


@dataclasses.dataclass
class Trends:
    """Per record, in batch order: fitted value now, slope (per second), forecast, points used,
    the reach: how far ahead (seconds) the forecast looks, the horizon or less, and the slope's
    t statistic (slope over its standard error: how clearly the window rises or falls, not just wanders)."""

    now: np.ndarray
    slope: np.ndarray
    forecast: np.ndarray
    points: np.ndarray
    reach: np.ndarray
    t: np.ndarray


class Trend:
    """Fits the trend lines of ``series`` over the last ``window`` records of each key.

    ``series`` maps each series' name to the range its forecasts are clipped
    to (a score's to [0, 1]; a target's to none, ``(-inf, inf)``). The per-key
    history (:attr:`fields`): ``times``, ``points`` (how many are real), and
    the last ``window - 1`` values of each series, newest last.

    Examples
    --------
    >>> trend = Trend(window=3, horizon=1.0, series={"score": (0.0, 1.0)})
    >>> arrays = {name: np.full((1, *field.shape), field.fill, field.dtype) for name, field in trend.fields.items()}
    >>> fitted = trend.fit(arrays, np.array([0]), Ranks(np.zeros(4, dtype=np.intp), 1), np.arange(4.0),
    ...                    {"score": np.array([0.1, 0.2, 0.3, 0.4])})
    >>> np.round(fitted["score"].forecast, 6).tolist(), arrays["score"][0].tolist()
    ([0.1, 0.15, 0.4, 0.5], [0.3, 0.4])
    """

    def __init__(self, window: int, horizon: float, series: dict[str, tuple[float, float]]):
        self.window = window
        self.horizon = horizon
        self.series = series
        keep = window - 1
        self.fields = {
            "times": Field((keep,), np.float64, 0.0),
            "points": Field((), np.int64, 0),
            **{name: Field((keep,), np.float64, 0.0) for name in series},
        }

    def fit(
        self, arrays: dict[str, np.ndarray], slots: np.ndarray, ranks: Ranks, times: np.ndarray, values: dict[str, np.ndarray]
    ) -> dict[str, Trends]:
        """The trends of every record of a batch, per series; each key's history (in ``arrays``) moves on."""
        window, keep = self.window, self.window - 1
        key_ids, positions, counts = ranks.key_ids, ranks.ranks, ranks.counts
        history_points = arrays["points"][slots]
        points = np.minimum(window, history_points[key_ids] + positions + 1)
        # Times relative to the record itself keep the sums small and exact enough;
        # points outside the key's past have weight 0, and so relative time 0, in every sum.
        relative = self._windows(arrays, "times", slots, ranks, times)
        relative -= times[:, None]  # in place: one large temporary less
        partial = np.flatnonzero(points < window)
        valid = np.arange(window) >= (window - points[partial])[:, None]
        relative[partial] *= valid
        arrays["points"][slots] = np.minimum(keep, history_points + counts)
        count = points.astype(float)
        sum_time = relative.sum(axis=1)
        spread = np.einsum("ij,ij->i", relative, relative) - sum_time * sum_time / count
        usable = (count >= 3) & (spread > 1e-12 * np.maximum(1.0, sum_time * sum_time / count))
        reach = np.minimum(self.horizon, -relative.min(axis=1))
        fitted = {}
        for name, clip in self.series.items():
            window_values = self._windows(arrays, name, slots, ranks, values[name])
            window_values[partial] *= valid
            sum_value = window_values.sum(axis=1)
            covariance = np.einsum("ij,ij->i", relative, window_values) - sum_time * sum_value / count
            slope = np.where(usable, covariance / np.where(usable, spread, 1.0), 0.0)
            now = (sum_value - slope * sum_time) / count
            fitted[name] = Trends(
                now,
                slope,
                np.clip(now + slope * reach, *clip),
                count,
                reach,
                _t_statistic(window_values, sum_value, covariance, slope, spread, count, usable),
            )
        return fitted

    def _windows(self, arrays: dict, name: str, slots: np.ndarray, ranks: Ranks, new: np.ndarray) -> np.ndarray:
        """Each record's window of ``name`` (its history, then its batch's records); the history moves on."""
        keep = self.window - 1
        # One row per key: its history, then its new records; columns before a key's
        # first point hold zeros (or stale values), which get weight 0 in every sum.
        row = np.zeros((len(slots), keep + ranks.depth))
        row[:, :keep] = arrays[name][slots]
        row[ranks.key_ids, keep + ranks.ranks] = new
        arrays[name][slots] = sliding_window_view(row, keep, axis=1)[np.arange(len(slots)), ranks.counts]
        return sliding_window_view(row, self.window, axis=1)[ranks.key_ids, ranks.ranks]


def _t_statistic(
    window_values: np.ndarray,
    sum_value: np.ndarray,
    covariance: np.ndarray,
    slope: np.ndarray,
    spread: np.ndarray,
    count: np.ndarray,
    usable: np.ndarray,
) -> np.ndarray:
    """Each line's slope over its standard error (infinite for points exactly on a sloped line, 0 when unusable)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.einsum("ij,ij->i", window_values, window_values) - sum_value * sum_value / count - slope * covariance
        error = np.sqrt(np.maximum(residual, 0.0) / np.maximum(count - 2, 1) / np.where(usable, spread, 1.0))
        t = np.where(error > 0, slope / error, np.copysign(np.inf, slope) * (slope != 0))
    return np.where(usable & (count > 2), t, 0.0)
