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


def empty_history() -> np.ndarray:
    """A key's past (time, score) pairs, one column each, newest last."""
    return np.empty((2, 0))


@dataclasses.dataclass
class Segment:
    """One key's part of a batch: its history and its new records' times and scores."""

    history: np.ndarray
    times: np.ndarray
    scores: np.ndarray


@dataclasses.dataclass
class Trends:
    """Per record, in segment order: fitted score now, slope (per second), forecast, points used."""

    now: np.ndarray
    slope: np.ndarray
    forecast: np.ndarray
    points: np.ndarray


def fit(segments: list[Segment], window: int, horizon: float) -> tuple[Trends, list[np.ndarray]]:
    """Trends of every new record, and each segment's history to keep (last ``window - 1``).

    >>> segment = Segment(empty_history(), np.arange(4.0), np.array([0.1, 0.2, 0.3, 0.4]))
    >>> trends, histories = fit([segment], window=3, horizon=1.0)
    >>> np.round(trends.forecast, 6).tolist(), histories[0].shape
    ([0.1, 0.15, 0.4, 0.5], (2, 2))
    """
    keep = window - 1
    times, scores, weights, ends, histories = [], [], [], [], []
    offset = 0
    for segment in segments:
        pad = keep - segment.history.shape[1]
        times += [np.zeros(pad), segment.history[0], segment.times]
        scores += [np.zeros(pad), segment.history[1], segment.scores]
        weights += [np.zeros(pad), np.ones(segment.history.shape[1] + len(segment.times))]
        length = keep + len(segment.times)
        ends.append(np.arange(offset + keep, offset + length))
        offset += length
    all_times = np.concatenate(times)
    all_scores = np.concatenate(scores)
    all_weights = np.concatenate(weights)
    end = np.concatenate(ends)
    start = end - keep
    window_times = sliding_window_view(all_times, window)[start]
    window_scores = sliding_window_view(all_scores, window)[start]
    valid = sliding_window_view(all_weights, window)[start]
    # Times relative to the record itself keep the sums small and exact enough.
    relative = (window_times - all_times[end][:, None]) * valid
    points = valid.sum(axis=1)
    mean_time = relative.sum(axis=1) / points
    mean_score = (window_scores * valid).sum(axis=1) / points
    time_deviation = (relative - mean_time[:, None]) * valid
    score_deviation = (window_scores - mean_score[:, None]) * valid
    spread = (time_deviation * time_deviation).sum(axis=1)
    covariance = (time_deviation * score_deviation).sum(axis=1)
    usable = (points >= 3) & (spread > 0)
    slope = np.where(usable, covariance / np.where(usable, spread, 1.0), 0.0)
    now = mean_score - slope * mean_time
    reach = np.minimum(horizon, -np.where(valid > 0, relative, 0.0).min(axis=1))
    forecast = np.clip(now + slope * reach, 0.0, 1.0)
    for segment, segment_end in zip(segments, np.cumsum([keep + len(s.times) for s in segments])):
        kept = min(keep, segment.history.shape[1] + len(segment.times))
        tail = slice(segment_end - kept, segment_end)
        histories.append(np.stack([all_times[tail], all_scores[tail]]))
    return Trends(now, slope, forecast, points), histories
