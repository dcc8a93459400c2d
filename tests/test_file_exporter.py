"""The file exporter: OTLP/JSON lines, length-prefixed proto, zstd, rotation, append, permissions, config."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import stat
import struct

import pytest
import zstandard

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.confmap import ConfigError
from otelml.exporters.file.config import FileConfig
from otelml.exporters.file.factory import factory
from otelml.pdata import Signal, from_json
from otelml.telemetry import Telemetry
from tests.conftest import build_config

KEYS = {Signal.TRACES: "resourceSpans", Signal.LOGS: "resourceLogs", Signal.METRICS: "resourceMetrics"}


def sample(signal: Signal, number: int, padding: int = 0):
    """A one-record batch of ``signal`` that carries ``number`` (and ``padding`` bytes of attribute)."""
    batch = signal.request_type()
    resource = getattr(batch, signal.resource_field).add()
    resource.resource.attributes.add(key="padding").value.string_value = "x" * padding
    if signal is Signal.TRACES:
        resource.scope_spans.add().spans.add(
            name=f"span {number}", trace_id=number.to_bytes(16, "big"), span_id=(number + 1).to_bytes(8, "big")
        )
    elif signal is Signal.LOGS:
        record = resource.scope_logs.add().log_records.add(span_id=number.to_bytes(8, "big"))
        record.body.string_value = f"log {number}"
    else:
        resource.scope_metrics.add().metrics.add(name=f"metric {number}").gauge.data_points.add(as_int=number)
    return batch


@contextlib.asynccontextmanager
async def file_exporter(**settings):
    exporter = factory.create(
        CreateSettings(ComponentID("file"), Kind.EXPORTER, Telemetry()), FileConfig.model_validate(settings)
    )
    await exporter.start(host=None)
    try:
        yield exporter
    finally:
        await exporter.shutdown()


async def write(path, batches, **settings) -> None:
    async with file_exporter(path=str(path), **settings) as exporter:
        for batch in batches:
            await exporter.consume(batch)


def read_length_prefixed(data: bytes) -> list[bytes]:
    messages, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        messages.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    assert offset == len(data), "a message was cut short"
    return messages


def zstd_frames(data: bytes) -> list[bytes]:
    """Each zstd frame of ``data``, decompressed."""
    frames = []
    while data:
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        frames.append(decompressor.decompress(data))
        data = decompressor.unused_data
    return frames


async def test_json_is_one_otlp_json_object_per_line_with_hex_ids(tmp_path):
    batches = [sample(Signal.TRACES, 1), sample(Signal.LOGS, 2), sample(Signal.METRICS, 3), sample(Signal.TRACES, 4)]
    await write(tmp_path / "out.jsonl", batches)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 4
    documents = [json.loads(line) for line in lines]
    assert [next(iter(d)) for d in documents] == ["resourceSpans", "resourceLogs", "resourceMetrics", "resourceSpans"]
    span = documents[0]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (span["traceId"], span["spanId"]) == ("0" * 31 + "1", "0" * 15 + "2")
    assert documents[1]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["spanId"] == "0" * 15 + "2"
    assert [from_json(line, Signal.of(batch)) for line, batch in zip(lines, batches)] == batches


async def test_proto_is_length_prefixed_and_reads_back(tmp_path):
    batches = [sample(Signal.LOGS, n, padding=n * 50) for n in range(5)]
    await write(tmp_path / "out.binpb", batches, format="proto")
    messages = read_length_prefixed((tmp_path / "out.binpb").read_bytes())
    assert [Signal.LOGS.request_type().FromString(m) for m in messages] == batches


async def test_zstd_json_file_decompresses_as_a_whole_and_holds_one_frame_per_line(tmp_path):
    batches = [sample(Signal.TRACES, n) for n in range(4)]
    await write(tmp_path / "out.jsonl.zst", batches, compression="zstd")
    data = (tmp_path / "out.jsonl.zst").read_bytes()
    whole = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    assert [from_json(line, Signal.TRACES) for line in whole.splitlines()] == batches
    assert len(zstd_frames(data)) == 4


async def test_zstd_proto_prefix_counts_compressed_bytes(tmp_path):
    batches = [sample(Signal.METRICS, n, padding=1000) for n in range(3)]
    await write(tmp_path / "out.binpb.zst", batches, format="proto", compression="zstd")
    messages = read_length_prefixed((tmp_path / "out.binpb.zst").read_bytes())
    decoded = [
        Signal.METRICS.request_type().FromString(zstandard.ZstdDecompressor().decompressobj().decompress(m)) for m in messages
    ]
    assert decoded == batches


async def test_rotation_keeps_the_newest_backups_and_bounds_file_sizes(tmp_path):
    unrelated = tmp_path / "out-errors.jsonl"  # another file sharing the name's prefix
    unrelated.write_text("keep me\n")
    batches = [sample(Signal.LOGS, n, padding=100_000) for n in range(40)]  # about 4 MiB in all
    await write(tmp_path / "out.jsonl", batches, rotation={"max_megabytes": 1, "max_backups": 2})
    backups = sorted(tmp_path.glob("out-2*.jsonl"))
    assert len(backups) == 2
    assert unrelated.read_text() == "keep me\n"
    files = backups + [tmp_path / "out.jsonl"]
    assert all(f.stat().st_size <= 1 << 20 for f in files)
    numbers = [
        int(from_json(line, Signal.LOGS).resource_logs[0].scope_logs[0].log_records[0].body.string_value.split()[1])
        for f in files
        for line in f.read_text().splitlines()
    ]
    # Oldest backups went first: what is left is an unbroken run ending with the last batch.
    assert numbers == list(range(40 - len(numbers), 40))
    assert len(numbers) > 20


async def test_a_backup_that_cannot_be_removed_does_not_stop_the_writing(tmp_path, caplog):
    # A directory in the shape of the oldest backup: removing it fails, as a backup that is not ours would.
    stuck = tmp_path / "out-2000-01-01T00-00-00.000000.jsonl"
    stuck.mkdir()
    batches = [sample(Signal.LOGS, n, padding=400_000) for n in range(6)]  # a rotation every other batch
    # Without retries a failed write refuses its batch at once. The file used to stay closed after the
    # failed removal: every batch after the first rotation was refused.
    await write(
        tmp_path / "out.jsonl", batches, rotation={"max_megabytes": 1, "max_backups": 1}, retry_on_failure={"enabled": False}
    )
    files = sorted(tmp_path.glob("out-2*.jsonl")) + [tmp_path / "out.jsonl"]
    numbers = [
        int(from_json(line, Signal.LOGS).resource_logs[0].scope_logs[0].log_records[0].body.string_value.split()[1])
        for f in files
        if f.is_file()
        for line in f.read_text().splitlines()
    ]
    assert numbers[-2:] == [4, 5]
    assert stuck.is_dir()
    assert any("cannot remove the old backup" in r.getMessage() and r.name == "otelml.exporter.file" for r in caplog.records)


@pytest.mark.parametrize(("append", "kept"), [(True, True), (False, False)])
async def test_append_keeps_old_content_and_otherwise_truncates(tmp_path, append, kept):
    path = tmp_path / "out.jsonl"
    await write(path, [sample(Signal.TRACES, 1)])
    await write(path, [sample(Signal.TRACES, 2)], append=append)
    names = [json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] for line in path.read_text().splitlines()]
    assert names == (["span 1", "span 2"] if kept else ["span 2"])


@pytest.mark.parametrize("settings", [{}, {"rotation": {"max_megabytes": 1}}, {"format": "proto", "compression": "zstd"}])
async def test_files_are_created_owner_only(tmp_path, settings):
    path = tmp_path / "nested" / "out.jsonl"
    await write(path, [sample(Signal.METRICS, 1)], **settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_flush_interval_makes_data_visible_before_shutdown(tmp_path):
    path = tmp_path / "out.jsonl"
    async with file_exporter(path=str(path), flush_interval="20ms") as exporter:
        await exporter.consume(sample(Signal.TRACES, 7))
        async with asyncio.timeout(10):  # a safety net, not a timing assertion
            while not path.read_bytes():
                await asyncio.sleep(0.02)
        assert from_json(path.read_text(), Signal.TRACES) == sample(Signal.TRACES, 7)


def config_problems(settings: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        build_config(
            {
                "receivers": {"otlp": {"protocols": {"grpc": {}}}},
                "exporters": {"file": settings},
                "service": {"pipelines": {"logs": {"receivers": ["otlp"], "exporters": ["file"]}}},
            }
        )
    return error.value.problems


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({}, "exporters::file::path: Field required"),
        ({"path": " "}, "exporters::file::path: must not be empty"),
        ({"path": "/"}, "exporters::file::path: / is a directory: name a file (in it or elsewhere)"),
        (
            {"path": "out.jsonl", "flush_interval": "-1s"},
            "exporters::file::flush_interval: must not be negative (0 flushes every write)",
        ),
        ({"path": "out.jsonl", "append": True, "rotation": {}}, "exporters::file::append: cannot be used together with rotation"),
        ({"path": "out.jsonl", "format": "xml"}, "exporters::file::format: "),
        ({"path": "out.jsonl", "compression": "gzip"}, "exporters::file::compression: "),
        ({"path": "out.jsonl", "rotation": {"max_megabytes": 0}}, "exporters::file::rotation::max_megabytes: "),
        ({"path": "out.jsonl", "rotate": True}, "exporters::file::rotate: unknown key"),
    ],
)
def test_config_errors_name_their_path(settings, problem):
    assert any(p.startswith(problem) for p in config_problems(settings)), config_problems(settings)
