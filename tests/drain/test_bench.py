"""The drain bench runs and reports sane figures (speed itself never fails a test)."""

from __future__ import annotations

from bench.drain import FLOOD_KINDS, _new_template_lines, flood, memory, speed
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


def test_a_flood_reports_each_kind_of_new_template_lines():
    rows = flood(max_clusters=300, lines=600)
    assert [kind for kind, _ in rows] == list(FLOOD_KINDS)
    assert all(rate > 0 for _, rate in rows)


def test_flood_lines_are_of_their_kind():
    bare = _new_template_lines(30, kind="bare variables")
    assert all(line.split()[3].startswith("(") for line in bare)
    sources = _new_template_lines(30, kind="sources")
    messages = [line.split(" ", 1)[1] for line in sources]
    assert messages[0] == messages[1] == messages[2] != messages[3]
    assert len({line.split()[0] for line in sources[:3]}) == 3
