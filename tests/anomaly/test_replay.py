"""``otelml replay`` reproduces the live run's scores from the file exporter's recording."""

from __future__ import annotations

import asyncio
import io
import urllib.request

import pytest
import yaml
import zstandard

from evaluation.run import evaluation_config
from otelml.pdata import Signal, to_json
from otelml.registry import Registry
from otelml.replay import print_summary, replay
from otelml.synthetic import make_trace_request
from tests.anomaly.support import attribute
from tests.conftest import build_config, read_batches, spans_of

pytestmark = pytest.mark.integration

SCORED = (
    "otelml.score",
    "otelml.anomaly",
    "otelml.expected",
    "otelml.forecast",
    "otelml.trend.slope",
    "otelml.incident.predicted",
)


def live_config() -> dict:
    """Scored spans go to one file; the same spans, unscored, are recorded to another."""
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "${env:HTTP}"}}}},
        "processors": {"batch": {"send_batch_size": 700, "timeout": "50ms"}, "anomaly": {"warmup": 20}},
        "exporters": {
            "file/scored": {"path": "${env:OUT}/scored.jsonl", "flush_interval": "50ms"},
            "file/raw": {"path": "${env:OUT}/raw.jsonl", "flush_interval": "50ms"},
        },
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["batch", "anomaly"], "exporters": ["file/scored"]},
                "traces/raw": {"receivers": ["otlp"], "exporters": ["file/raw"]},
            },
            "telemetry": {"metrics": {"level": "none"}},
        },
    }


def by_span(batches) -> dict[bytes, tuple]:
    return {span.span_id: tuple(attribute(span, key) for key in SCORED) for span in spans_of(batches)}


def post(url: str, request) -> None:
    body = request.SerializeToString()
    http = urllib.request.Request(f"{url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(http, timeout=10) as response:
        assert response.status == 200


def test_replay_of_a_recording_gives_the_live_scores(otelml_process, tmp_path):
    with otelml_process(live_config()) as live:
        for number in range(8):
            request = make_trace_request(
                spans=400,
                services=4,
                operations=3,
                seed=number,
                anomaly_rate=0.01,
                start_ns=1_700_000_000_000_000_000 + number * 400_000_000,
            )
            post(live.http_url, request)
    assert live.process.returncode == 0
    live_scores = by_span(read_batches(tmp_path / "scored.jsonl", Signal.TRACES))
    assert len(live_scores) == 3200

    config = build_config({**live_config(), "receivers": {"otlp": {"protocols": {"http": None}}}})
    output = io.BytesIO()
    chains, lines = asyncio.run(
        replay(config, Registry.default(), tmp_path / "raw.jsonl", output, pipelines=["traces"], progress=False)
    )
    assert lines >= 8
    (tmp_path / "replayed.jsonl").write_bytes(output.getvalue())
    replayed = by_span(read_batches(tmp_path / "replayed.jsonl", Signal.TRACES))
    assert replayed == live_scores
    assert any(scores[1] for scores in replayed.values()), "the recording holds anomalies"

    summary = io.StringIO()
    print_summary(chains, lines, top=3, out=summary)
    text = summary.getvalue()
    assert "traces / anomaly: 12 keys, 3200 records" in text
    assert "... 9 more keys" in text


def test_replay_reads_zstd_recordings_and_replaces_earlier_scores(tmp_path):
    config = build_config(evaluation_config({}, "traces"))
    batches = [make_trace_request(spans=50, services=2, seed=n, start_ns=1_700_000_000_000_000_000 + n * 10**9) for n in range(3)]
    compressor = zstandard.ZstdCompressor()
    recording = tmp_path / "recorded.jsonl.zst"
    recording.write_bytes(b"".join(compressor.compress(to_json(b) + b"\n") for b in batches))
    first, second = io.BytesIO(), io.BytesIO()
    asyncio.run(replay(config, Registry.default(), recording, first, progress=False))
    (tmp_path / "once.jsonl").write_bytes(first.getvalue())
    asyncio.run(replay(config, Registry.default(), tmp_path / "once.jsonl", second, progress=False))
    (tmp_path / "twice.jsonl").write_bytes(second.getvalue())
    once = spans_of(read_batches(tmp_path / "once.jsonl", Signal.TRACES))
    twice = spans_of(read_batches(tmp_path / "twice.jsonl", Signal.TRACES))
    assert len(once) == len(twice) == 150
    assert [attribute(s, "otelml.score") for s in once] == [attribute(s, "otelml.score") for s in twice]
    assert all([kv.key for kv in s.attributes].count("otelml.score") == 1 for s in twice)


def test_replay_command(tmp_path, capsys):
    from otelml.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(evaluation_config({"warmup": 10}, "traces", processor_id="anomaly/latency")))
    recording = tmp_path / "recorded.jsonl"
    recording.write_bytes(b"".join(to_json(make_trace_request(spans=100, services=2, seed=n)) + b"\n" for n in range(2)))
    scored = tmp_path / "scored.jsonl"
    assert main(["replay", "--config", str(config), "--input", str(recording), "--output", str(scored), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "replayed 2 batches" in out and "traces / anomaly/latency:" in out
    assert len(spans_of(read_batches(scored, Signal.TRACES))) == 200
    recording.write_text("{not json\n")
    assert main(["replay", "--config", str(config), "--input", str(recording)]) == 1
    assert "line 1: invalid JSON" in capsys.readouterr().err
