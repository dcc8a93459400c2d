"""The NAB-style scorer on tiny hand-made cases, and the harness end to end on a small corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.nab import PROFILES, LabelledSeries, load_corpus, locate_data, row_weights, scaled_sigmoid, score_corpus, sweep
from evaluation.run import evaluate, file_details
from evaluation.synthetic import INCIDENT, KeyResult, incident_line

STANDARD = PROFILES["standard"]


def series(rows: int = 100, windows=((50, 59),), name: str = "toy") -> LabelledSeries:
    start = np.datetime64("2024-01-01T00:00:00")
    return LabelledSeries(name, start + np.arange(rows) * np.timedelta64(5, "m"), np.zeros(rows), list(windows))


def detections(rows: int, *at: int, score: float = 1.0) -> np.ndarray:
    scores = np.zeros(rows)
    scores[list(at)] = score
    return scores


def test_scaled_sigmoid_matches_nab():
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(3.0) == -1.0


def test_null_scores_zero_and_perfect_one_hundred():
    corpus = [series()]
    assert score_corpus(corpus, [np.zeros(100)], STANDARD).normalised == 0.0
    assert score_corpus(corpus, [detections(100, 50)], STANDARD).normalised == pytest.approx(100.0)


def test_earlier_detection_in_a_window_scores_higher_and_only_the_best_counts():
    corpus = [series()]
    middle = score_corpus(corpus, [detections(100, 55)], STANDARD)
    # Row 55 of window 50..59: position -(59 - 55 + 1) / 10 = -0.5.
    assert middle.raw == pytest.approx(float(scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0)))
    both = score_corpus(corpus, [detections(100, 52, 55)], STANDARD)
    assert both.raw == pytest.approx(float(scaled_sigmoid(-0.8) / scaled_sigmoid(-1.0)))


def test_false_positives_cost_the_profile_weight_less_just_after_a_window():
    corpus = [series()]
    before = score_corpus(corpus, [detections(100, 30, 50)], STANDARD)
    assert before.raw == pytest.approx(1.0 - STANDARD.fp)
    low_fp = score_corpus(corpus, [detections(100, 30, 50)], PROFILES["reward_low_FP_rate"])
    assert low_fp.raw == pytest.approx(1.0 - 0.22)
    just_after = score_corpus(corpus, [detections(100, 60, 50)], STANDARD)
    # One row past a 10-row window: position 1 / 9.
    assert just_after.raw == pytest.approx(1.0 + STANDARD.fp * float(scaled_sigmoid(1 / 9)))
    assert just_after.raw > before.raw


def test_probation_rows_are_not_scored():
    weights = row_weights(series())
    assert weights.first_row == 15
    corpus = [series()]
    assert score_corpus(corpus, [detections(100, 5, 50)], STANDARD).raw == pytest.approx(1.0)


def test_missed_windows_cost_more_with_reward_low_fn():
    corpus = [series(windows=((40, 49), (70, 79)))]
    result = score_corpus(corpus, [detections(100, 40)], PROFILES["reward_low_FN_rate"])
    assert result.raw == pytest.approx(1.0 - 2.0)
    assert result.null == -4.0 and result.perfect == 2.0
    assert result.normalised == pytest.approx(100 * 3 / 6)


def test_one_threshold_is_swept_over_the_whole_corpus():
    corpus = [series(name="a"), series(name="b", windows=())]
    # File a's window scores 0.6; file b has four false positives scoring 0.7 that a lower threshold would also take.
    a = detections(100, 52, score=0.6)
    b = detections(100, 20, 30, 40, 80, score=0.7)
    threshold, raw = sweep([row_weights(s) for s in corpus], [a, b], STANDARD)
    assert threshold == pytest.approx(0.6)
    assert raw == pytest.approx(float(scaled_sigmoid(-0.8) / scaled_sigmoid(-1.0)) - 4 * STANDARD.fp)
    alone = score_corpus(corpus, [a, np.zeros(100)], STANDARD)
    assert alone.per_file == {"a": pytest.approx(float(scaled_sigmoid(-0.8) / scaled_sigmoid(-1.0))), "b": 0.0}


def test_harness_replays_a_small_corpus_and_finds_a_level_shift():
    rng = np.random.default_rng(0)
    values = 10 + rng.normal(0, 0.5, 2000)
    values[1500:] += 8
    shifted = LabelledSeries(
        "shift.csv", np.datetime64("2024-01-01") + np.arange(2000) * np.timedelta64(60, "s"), values, [(1450, 1549)]
    )
    calm = LabelledSeries("calm.csv", shifted.timestamps, 10 + rng.normal(0, 0.5, 2000), [])
    corpus = [shifted, calm]
    result = evaluate(corpus, "default", {"target": "attributes.value"})
    assert result.by_profile["standard"].normalised > 80
    lines = file_details(corpus, result)
    assert lines[1].startswith("shift.csv") and lines[1].split()[-1] == "0.50"


def test_nab_dev_corpus_is_found_beside_the_repository():
    corpus = load_corpus(locate_data())
    assert len(corpus) == 27
    assert sum(len(s.windows) for s in corpus) == 53
    assert all(start <= end < len(s.values) for s in corpus for start, end in s.windows)


def _key_result(flags_at: list[int], incident: bool, records: int = 400) -> KeyResult:
    times = INCIDENT - 200.0 + np.arange(records, dtype=float)
    anomalies = np.zeros(records, dtype=bool)
    anomalies[flags_at] = True
    return KeyResult("toy", "shop lookup", times, anomalies * 0.9, anomalies, np.zeros(records, dtype=bool), incident)


def test_the_synthetic_table_counts_every_flag_of_a_scenario_with_nothing_injected():
    # Records 0-99 are each key's start and are not counted; a window covers records 180-219 of an incident's key.
    assert incident_line([_key_result([50, 150, 390], incident=False)]) == "| toy | 1 | 400 |         - |         - | 2 |"
    assert incident_line([_key_result([150, 205], incident=True)]) == "| toy | 1 | 400 |        5s |        5s | 1 |"
