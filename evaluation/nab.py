"""Scoring the way the Numenta Anomaly Benchmark does (Lavin & Ahmad, 2015).

A detector gives every row of every file a score in [0, 1]. One threshold,
swept over the whole corpus, turns scores into detections. Inside a
labelled window only the best (earliest) detection counts, weighted by a
scaled sigmoid of its position; a missed window costs the FN weight; a
detection outside windows costs the FP weight, less when it falls just after
a window. The first 15% of each file (at most 750 rows) is probation and is
not scored. The corpus total is normalised so that the null detector (no
detections) scores 0 and the perfect one (a detection at each window start)
scores 100.

>>> import numpy as np
>>> series = LabelledSeries("toy", np.arange(100), np.zeros(100), [(50, 59)])
>>> perfect = np.zeros(100); perfect[50] = 1.0
>>> round(score_corpus([series], [perfect], PROFILES["standard"]).normalised, 6)
100.0
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

DATA_ENV = "OTELML_NAB_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent
PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750


@dataclasses.dataclass(frozen=True)
class Profile:
    """Weights of a true positive, a missed window and a false positive."""

    name: str
    tp: float
    fn: float
    fp: float


PROFILES = {
    "standard": Profile("standard", tp=1.0, fn=1.0, fp=0.11),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", tp=1.0, fn=1.0, fp=0.22),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", tp=1.0, fn=2.0, fp=0.11),
}


@dataclasses.dataclass
class LabelledSeries:
    """One stream: row timestamps (any ordered numbers), values and window row ranges.

    ``windows`` holds ``(first_row, last_row)`` pairs, both inclusive.
    """

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        return int(min(math.floor(PROBATION_FRACTION * len(self.values)), PROBATION_MAX_ROWS))


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """NAB's reward curve: ~0.987 at a window's left edge (-1), 0 at its right edge,
    towards -1 past it; a full -1 from three window widths on."""
    position = np.asarray(position, dtype=float)
    curve = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position >= 3.0, -1.0, curve)


@dataclasses.dataclass
class RowWeights:
    """Per scorable row of one file: the window it belongs to (-1 for none) and its
    unweighted reward (TP rows) or penalty factor (FP rows)."""

    window: np.ndarray
    reward: np.ndarray
    first_row: int


def row_weights(series: LabelledSeries) -> RowWeights:
    """NAB's per-row sweep score before profile weights, probation rows removed."""
    count = len(series.values)
    window = np.full(count, -1)
    reward = np.full(count, -1.0)
    rows = np.arange(count)
    max_tp = float(scaled_sigmoid(-1.0))
    previous_end, previous_width = None, None
    boundaries = sorted(series.windows) + [(count, count)]
    for index, (start, end) in enumerate(boundaries):
        gap_start = 0 if previous_end is None else previous_end + 1
        gap = rows[gap_start:start]
        if previous_end is not None:
            reward[gap] = scaled_sigmoid(np.abs(previous_end - gap) / (previous_width - 1.0))
        if start >= count:
            break
        width = float(end - start + 1)
        inside = rows[start : end + 1]
        window[inside] = index
        reward[inside] = scaled_sigmoid(-(end - inside + 1) / width) / max_tp
        previous_end, previous_width = end, width
    first = series.probation
    return RowWeights(window[first:], reward[first:], first)


@dataclasses.dataclass
class CorpusScore:
    threshold: float
    raw: float
    null: float
    perfect: float
    per_file: dict[str, float]

    @property
    def normalised(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def _raw_at(weights: RowWeights, scores: np.ndarray, threshold: float, profile: Profile) -> float:
    """One file's raw NAB score when every row scoring >= threshold is a detection."""
    detected = scores[weights.first_row :] >= threshold
    outside = weights.window < 0
    total = float(np.sum(weights.reward[detected & outside])) * profile.fp
    for window in np.unique(weights.window[~outside]):
        hits = detected & (weights.window == window)
        total += max(-profile.fn, float(weights.reward[hits].max()) * profile.tp) if hits.any() else -profile.fn
    return total


def sweep(weights: list[RowWeights], scores: list[np.ndarray], profile: Profile) -> tuple[float, float]:
    """The threshold that maximises the corpus's raw score, and that score.

    Candidate thresholds are the distinct scores, as in NAB; ties detect together.
    """
    all_scores, all_windows, all_rewards = [], [], []
    window_offset = 0
    for weight, score in zip(weights, scores):
        all_scores.append(np.asarray(score, dtype=float)[weight.first_row :])
        all_windows.append(np.where(weight.window >= 0, weight.window + window_offset, -1))
        all_rewards.append(weight.reward)
        window_offset += int(weight.window.max(initial=-1)) + 1
    score = np.concatenate(all_scores)
    window = np.concatenate(all_windows)
    reward = np.concatenate(all_rewards)
    order = np.argsort(-score, kind="stable")
    score, window, reward = score[order], window[order], reward[order]
    windows_present = np.unique(window[window >= 0])
    best_in_window = dict.fromkeys(windows_present.tolist(), -profile.fn)
    total = -profile.fn * len(windows_present)
    best_threshold, best_total = 1.1, total
    index = 0
    while index < len(score):
        threshold = score[index]
        # Take every row with this score before judging the threshold.
        while index < len(score) and score[index] == threshold:
            if window[index] < 0:
                total += reward[index] * profile.fp
            else:
                gain = reward[index] * profile.tp
                previous = best_in_window[window[index]]
                if gain > previous:
                    total += gain - previous
                    best_in_window[window[index]] = gain
            index += 1
        if total > best_total:
            best_threshold, best_total = float(threshold), total
    return best_threshold, best_total


def score_corpus(corpus: list[LabelledSeries], scores: list[np.ndarray], profile: Profile) -> CorpusScore:
    """Sweep one threshold over the corpus, then score it as NAB does, normalised."""
    weights = [row_weights(series) for series in corpus]
    threshold, _ = sweep(weights, scores, profile)
    per_file = {s.name: _raw_at(w, np.asarray(x, dtype=float), threshold, profile) for s, w, x in zip(corpus, weights, scores)}
    null = sum(_raw_at(w, np.zeros(len(s.values)), 1.0, profile) for s, w in zip(corpus, weights))
    perfect = sum(_raw_at(w, _perfect_scores(s, w), 1.0, profile) for s, w in zip(corpus, weights))
    return CorpusScore(threshold, sum(per_file.values()), null, perfect, per_file)


def _perfect_scores(series: LabelledSeries, weights: RowWeights) -> np.ndarray:
    """A detection at the first scorable row of every window."""
    perfect = np.zeros(len(series.values))
    for start, end in series.windows:
        if end >= weights.first_row:
            perfect[max(start, weights.first_row)] = 1.0
    return perfect


def locate_data() -> Path:
    """The NAB data folder: ``$OTELML_NAB_DATA``, else ``../shared/data/nab-dev`` beside the repo."""
    override = os.environ.get(DATA_ENV)
    path = Path(override) if override else REPO_ROOT.parent / "shared" / "data" / "nab-dev"
    if not (path / "combined_windows.json").is_file():
        raise FileNotFoundError(f"no NAB data at {path} (set {DATA_ENV} to the folder holding combined_windows.json)")
    return path


def load_corpus(root: Path) -> list[LabelledSeries]:
    """Every labelled file under ``root``, with window timestamps turned into row ranges."""
    labels = json.loads((root / "combined_windows.json").read_text())
    corpus = []
    for name in sorted(labels):
        with open(root / "data" / name, newline="") as handle:
            rows = list(csv.DictReader(handle))
        timestamps = np.array([row["timestamp"] for row in rows], dtype="datetime64[s]")
        values = np.array([float(row["value"]) for row in rows])
        windows = [(_row_of(timestamps, start, name), _row_of(timestamps, end, name)) for start, end in labels[name]]
        corpus.append(LabelledSeries(name, timestamps, values, windows))
    return corpus


def _row_of(timestamps: np.ndarray, text: str, name: str) -> int:
    moment = np.datetime64(text.split(".")[0].replace(" ", "T"), "s")
    row = int(np.searchsorted(timestamps, moment))
    if row >= len(timestamps) or timestamps[row] != moment:
        raise ValueError(f"{name}: window boundary {text} is not a row timestamp")
    return row
