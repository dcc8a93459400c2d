"""otelml observed like a collector: process metrics on the metrics endpoint, no *_created series, log lines that name components."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from otelml import process
from otelml.telemetry import Level, Telemetry
from tests.conftest import otlp_to_file_config


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return response.read().decode()


def samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_process_readings_are_this_process():
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    assert abs(process.resident_bytes() - int(status["VmRSS"].split()[0]) * 1024) < 16 << 20
    assert process.cpu_seconds() > 0
    assert process.uptime_seconds() > 0


def test_process_metrics_follow_the_level():
    names = {family.name for family in Telemetry(Level.BASIC).registry.collect()}
    assert {"otelcol_process_uptime", "otelcol_process_cpu_seconds", "otelcol_process_memory_rss"} <= names
    assert not {family.name for family in Telemetry(Level.NONE).registry.collect()}


@pytest.mark.integration
def test_the_metrics_endpoint_serves_process_metrics_and_no_created_series(otelml_process):
    with otelml_process(otlp_to_file_config()) as otelml:
        first = scrape(otelml.env["METRICS"])
        time.sleep(0.5)
        second = samples(scrape(otelml.env["METRICS"]))
        rss = process.resident_bytes(otelml.process.pid)
    earlier = samples(first)
    assert 0 < earlier["otelcol_process_uptime_total"] < second["otelcol_process_uptime_total"]
    assert 0 < earlier["otelcol_process_cpu_seconds_total"] <= second["otelcol_process_cpu_seconds_total"]
    assert abs(second["otelcol_process_memory_rss"] - rss) < 32 << 20
    names = [line.split("{")[0].split(" ")[0] for line in first.splitlines() if line and not line.startswith("#")]
    assert names and not [name for name in names if name.endswith("_created")]


@pytest.mark.integration
def test_start_up_lines_name_the_processor_and_its_pipeline(otelml_process):
    with otelml_process(otlp_to_file_config()) as otelml:
        log = otelml.log()
    assert "processor batch: starting in pipeline traces" in log
    assert "processor traces: starting" not in log
