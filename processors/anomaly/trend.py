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
from array import array

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from otelml.configmodel import ComponentConfig, Duration


class TrendConfig(ComponentConfig):
    window: int = 60
    horizon: Duration = 300.0

    def validate(self) -> list[str]:
        problems = []
        if not 3 <= self.window <= 10000:
            problems.append("window: must be between 3 and 10000 scores")
        if self.horizon <= 0:
            problems.append("horizon: must be positive")
        return problems


def empty_history() -> tuple[array, array]:
    """A key's past times and scores, newest last."""
    return array("d"), array("d")


@dataclasses.dataclass
class Trends:
    """Per record, in segment order: fitted score now, slope (per second), forecast, points used."""

    now: np.ndarray
    slope: np.ndarray
    forecast: np.ndarray
    points: np.ndarray


# A segment is one key's part of a batch: (history times, history scores, new times, new scores).
Segment = tuple[array, array, list, list]


def fit(segments: list[Segment], window: int, horizon: float) -> Trends:
    """Trends of every new record; each segment's history becomes its last ``window - 1`` points.

    >>> history = empty_history()
    >>> trends = fit([(*history, [0.0, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4])], window=3, horizon=1.0)
    >>> np.round(trends.forecast, 6).tolist(), history[1].tolist()
    ([0.1, 0.15, 0.4, 0.5], [0.3, 0.4])
    """
    keep = window - 1
    # All segments one after the other, after ``keep`` zeros so that every window starts
    # inside the arrays; points outside a record's own segment get weight 0.
    times, scores = array("d", bytes(8 * keep)), array("d", bytes(8 * keep))
    ends, firsts, spans = [], [], []
    for history_times, history_scores, new_times, new_scores in segments:
        first = len(times)
        times.extend(history_times)
        times.extend(new_times)
        scores.extend(history_scores)
        scores.extend(new_scores)
        ends.extend(range(first + len(history_times), len(times)))
        firsts += [first] * len(new_times)
        spans.append((len(times), min(keep, len(times) - first)))
    # Histories are updated in place (no new objects for the garbage collector to follow),
    # and before numpy shares the arrays' memory, which makes slicing them slower.
    for (history_times, history_scores, _, _), (stop, kept) in zip(segments, spans):
        history_times[:] = times[stop - kept:stop]
        history_scores[:] = scores[stop - kept:stop]
    all_times = np.frombuffer(times)
    end = np.asarray(ends)
    start = end - keep
    window_times = sliding_window_view(all_times, window)[start]
    window_scores = sliding_window_view(np.frombuffer(scores), window)[start]
    valid = ((start[:, None] + np.arange(window)) >= np.asarray(firsts)[:, None]).astype(float)
    # Times relative to the record itself keep the sums small and exact enough;
    # points outside the record's segment have weight 0, and so relative time 0, in every sum.
    relative = (window_times - all_times[end][:, None]) * valid
    points = valid.sum(axis=1)
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
