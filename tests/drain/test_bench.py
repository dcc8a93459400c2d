"""The drain bench runs and reports sane figures (speed itself never fails a test)."""

from __future__ import annotations

from bench.drain import memory, speed
from evaluation.logs import locate_data


def test_speed_reports_every_record_of_each_system():
    [(system, count, first, second)] = speed(locate_data(), ["Apache"])
    assert (system, count) == ("Apache", 2000)
    assert first > 0 and second > 0


def test_memory_holds_max_clusters_at_most():
    rows = memory(max_clusters=300, steps=2, lines_per_step=1000)
    assert [lines for lines, _, _ in rows] == [1000, 2000]
    assert all(clusters == 300 for _, clusters, _ in rows)
    assert all(mebibytes > 0 for _, _, mebibytes in rows)
