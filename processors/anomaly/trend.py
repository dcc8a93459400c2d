"""A least-squares line over each key's recent composite scores, for the whole batch at once.

For every record, the line is fitted over the key's ``window`` most recent
scores (the record's own included) against record time, and read at
``now + horizon``. The forecast never looks further ahead than the window
reaches back, since a line says nothing about times farther away than the
data it was fitted on.

Each record's window holds exactly the same numbers however the stream was
cut into batches, so a replay gives bit-identical forecasts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from otelml.configmodel import ComponentConfig, Duration
from otelml.processors.anomaly.layout import Layout


class TrendConfig(ComponentConfig):
    window: int = 60
    horizon: Duration = 300.0

    def validate_config(self) -> list[str]:
        problems = []
        if not 3 <= self.window <= 10000:
            problems.append("window: must be between 3 and 10000 scores")
        if self.horizon <= 0:
            problems.append("horizon: must be positive")
        return problems


def history_fields(window: int) -> dict[str, tuple]:
    """The per-key arrays of the trend: the last ``window - 1`` times and scores (newest last) and how many are real."""
    keep = window - 1
    return {"trend_times": ((keep,), np.float64, 0.0), "trend_scores": ((keep,), np.float64, 0.0),
            "trend_points": ((), np.int64, 0)}


@dataclasses.dataclass
class Trends:
    """Per record, in batch order: fitted score now, slope (per second), forecast, points used."""

    now: np.ndarray
    slope: np.ndarray
    forecast: np.ndarray
    points: np.ndarray


def fit(arrays: dict[str, np.ndarray], slots: np.ndarray, layout: Layout, times: np.ndarray, scores: np.ndarray,
        window: int, horizon: float) -> Trends:
    """Trends of every record of a batch; each key's history (in ``arrays``, see :func:`history_fields`) moves on.

    >>> arrays = {name: np.full((1, *shape), fill, dtype) for name, (shape, dtype, fill) in history_fields(3).items()}
    >>> layout = Layout(np.zeros(4, dtype=np.intp), 1)
    >>> trends = fit(arrays, np.array([0]), layout, np.arange(4.0), np.array([0.1, 0.2, 0.3, 0.4]), window=3, horizon=1.0)
    >>> np.round(trends.forecast, 6).tolist(), arrays["trend_scores"][0].tolist()
    ([0.1, 0.15, 0.4, 0.5], [0.3, 0.4])
    """
    keep = window - 1
    key_ids, ranks, counts = layout.key_ids, layout.ranks, layout.counts
    # One row per key: its history, then its new records; columns before a key's
    # first point hold zeros (or stale values), which get weight 0 in every sum.
    width = keep + layout.depth
    history_points = arrays["trend_points"][slots]
    rows = []
    for name, new in (("trend_times", times), ("trend_scores", scores)):
        row = np.zeros((len(slots), width))
        row[:, :keep] = arrays[name][slots]
        row[key_ids, keep + ranks] = new
        rows.append(row)
        # The new history: each key's last ``keep`` columns up to its newest record.
        arrays[name][slots] = sliding_window_view(row, keep, axis=1)[np.arange(len(slots)), counts]
    arrays["trend_points"][slots] = np.minimum(keep, history_points + counts)
    window_scores = sliding_window_view(rows[1], window, axis=1)[key_ids, ranks]
    points = np.minimum(window, history_points[key_ids] + ranks + 1)
    # Times relative to the record itself keep the sums small and exact enough;
    # points outside the key's past have weight 0, and so relative time 0, in every sum.
    relative = sliding_window_view(rows[0], window, axis=1)[key_ids, ranks]
    relative -= times[:, None]  # in place: one large temporary less
    valid = np.ones((len(times), window))
    partial = np.flatnonzero(points < window)
    if len(partial):
        valid[partial] = np.arange(window) >= (window - points[partial])[:, None]
        relative[partial] *= valid[partial]
    points = points.astype(float)
    sum_time = relative.sum(axis=1)
    sum_score = np.einsum("ij,ij->i", window_scores, valid)
    spread = np.einsum("ij,ij->i", relative, relative) - sum_time * sum_time / points
    covariance = np.einsum("ij,ij->i", relative, window_scores) - sum_time * sum_score / points
    usable = (points >= 3) & (spread > 1e-12 * np.maximum(1.0, sum_time * sum_time / points))
    slope = np.where(usable, covariance / np.where(usable, spread, 1.0), 0.0)
    now = (sum_score - slope * sum_time) / points
    reach = np.minimum(horizon, -relative.min(axis=1))
    forecast = np.clip(now + slope * reach, 0.0, 1.0)
    return Trends(now, slope, forecast, points)
