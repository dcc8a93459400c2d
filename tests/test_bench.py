"""The bench's quick mode runs and reports sane figures (its speed never fails CI)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_quick_bench_reports_every_figure(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--seconds", "1", "--systems", "otelml,rotel,ceiling", "--json", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(output.read_text())
    for name in ("otelml", "rotel"):
        figures = results["systems"][name]
        assert figures["spans"] > 0 and figures["errors"] == 0
        assert figures["spans_per_cpu_second"] > 0 and figures["peak_rss_mib"] > 0
        latency = figures["latency"][0]
        assert latency["seen"] > 0 and latency["p50_ms"] <= latency["p99_ms"] <= latency["p999_ms"]
    assert results["systems"]["ceiling"]["spans_per_cpu_second"] > 0
    assert set(results["ratios"]) == {"otelml/rotel", "otelml/ceiling"}
    assert "| otelml |" in result.stdout and "otelml/rotel" in result.stdout
