"""``otelml replay`` builds pipelines as the service does and counts every record it replays."""

from __future__ import annotations

import asyncio
import io

from otelml.encoding import add_attributes
from otelml.pdata import Signal, to_json
from otelml.registry import Registry
from otelml.replay import print_summary, replay
from tests.conftest import build_config

READINGS = 30


def readings(first: int, devices: int) -> bytes:
    """One batch of log records from ``devices`` devices; every third record carries no temperature."""
    batch = Signal.LOGS.request_type()
    for device in range(devices):
        resource_logs = batch.resource_logs.add()
        add_attributes(resource_logs.resource.attributes, {"device.id": f"sensor-{device}"})
        records = resource_logs.scope_logs.add().log_records
        for number in range(first, first + READINGS):
            record = records.add(time_unix_nano=1_700_000_000_000_000_000 + number * 10**9)
            if number % 3:
                add_attributes(record.attributes, {"temperature": 20.0 + number % 5})
    return to_json(batch) + b"\n"


def test_the_summary_counts_every_record_replayed_scored_or_not(tmp_path):
    recording = tmp_path / "readings.jsonl"
    recording.write_bytes(readings(0, devices=3) + readings(READINGS, devices=3))
    config = build_config(
        {
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"batch": {}, "anomaly/iot": {"key": ["resource.device.id"], "target": "attributes.temperature"}},
            "exporters": {"debug": {}},
            "service": {
                "pipelines": {"logs": {"receivers": ["otlp"], "processors": ["batch", "anomaly/iot"], "exporters": ["debug"]}}
            },
        }
    )
    chains, lines = asyncio.run(replay(config, Registry.default(), recording, None, progress=False))
    assert lines == 2
    [chain] = chains
    assert [chain.records_in(position) for position in range(2)] == [2 * 3 * READINGS] * 2
    summary = io.StringIO()
    print_summary(chains, lines, top=3, out=summary)
    assert "logs / anomaly/iot: 3 keys, 180 records" in summary.getvalue()
    # Per key, only the scored ones: the readings with a temperature.
    assert sum(int(line.split()[0]) for line in summary.getvalue().splitlines()[-3:]) == 120
