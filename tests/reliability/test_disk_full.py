"""The file exporter on a full disk: no torn or doubled record, and what is lost is counted.

otelml (a subprocess) writes OTLP spans to a length-prefixed protobuf file.
The test lowers the process's file size limit (RLIMIT_FSIZE, through
prlimit) to a few bytes past what the file holds, so the next write is cut
short and the one after it fails (EFBIG), as on a disk that fills up; lifting
the limit is the disk getting space back. The file is first made larger than
otelml's own log, which the same limit would otherwise cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import struct
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import metric
from tests.reliability.faults import Client, span_numbers

pytestmark = pytest.mark.integration

BIG_REQUEST = 2000  # spans: a file larger than the log


def file_exporter_config(flush_interval: str) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:GRPC}"}}}},
        "exporters": {
            "file": {
                "path": "${env:OUT}/out.otlp",
                "format": "proto",
                "flush_interval": flush_interval,
                "retry_on_failure": {"initial_interval": "50ms", "max_interval": "100ms", "max_elapsed_time": "500ms"},
            }
        },
        "service": {
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file"]}},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }


def fill_disk(pid: int, path: Path) -> None:
    """Writes of process ``pid`` fail from a few bytes past the current end of ``path``."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (path.stat().st_size + 16, hard))


@contextlib.contextmanager
def disk_full(pid: int, path: Path):
    """:func:`fill_disk` until the block ends."""
    fill_disk(pid, path)
    try:
        yield
    finally:
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


def written_span_numbers(path: Path) -> list[int]:
    """Span numbers of every record in ``path``, which must hold whole records only."""
    data, offset, numbers = path.read_bytes(), 0, []
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        assert offset + 4 + length <= len(data), f"a torn record at byte {offset}"
        numbers += span_numbers(ExportTraceServiceRequest.FromString(data[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    return numbers


async def eventually(condition, what: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):  # a safety net, not a timing assertion
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_batch_refused_on_a_full_disk_is_neither_torn_nor_written_later(otelml_process):
    otelml = otelml_process(file_exporter_config(flush_interval="0s")).start()
    path = otelml.workdir / "out.otlp"
    async with Client(otelml.grpc_endpoint, spans_per_request=BIG_REQUEST) as client:
        assert (await client.send()).accepted
    async with Client(otelml.grpc_endpoint, spans_per_request=10, first_number=BIG_REQUEST + 1) as client:
        with disk_full(otelml.process.pid, path):
            refused = await client.send()
        assert (await client.send()).accepted
    assert not refused.accepted
    failed = metric(otelml.metrics(), "otelcol_exporter_send_failed_spans_total", exporter="file")
    assert otelml.stop() == 0
    # The refused batch's retries used to wait in the write buffer and reach the file, cut and repeated,
    # once the disk had space again.
    numbers = written_span_numbers(path)
    assert sorted(numbers) == list(range(1, BIG_REQUEST + 1)) + list(range(BIG_REQUEST + 11, BIG_REQUEST + 21))
    assert failed == 10


async def test_buffered_spans_wait_out_a_full_disk_and_what_shutdown_cannot_write_is_counted(otelml_process):
    otelml = otelml_process(file_exporter_config(flush_interval="50ms")).start()
    path = otelml.workdir / "out.otlp"
    async with Client(otelml.grpc_endpoint, spans_per_request=BIG_REQUEST) as client:
        assert (await client.send()).accepted
        await eventually(lambda: path.stat().st_size > 0, "the first request being written")
        with disk_full(otelml.process.pid, path):
            assert (await client.send()).accepted  # buffered: the flush fails later
            await eventually(lambda: "cannot write to" in otelml.log(), "the failed flush being logged")
        await eventually(lambda: len(written_span_numbers(path)) == 2 * BIG_REQUEST, "the buffered spans being written")
        assert "writing to" in otelml.log()
        assert sorted(written_span_numbers(path)) == list(range(1, 2 * BIG_REQUEST + 1))

        fill_disk(otelml.process.pid, path)
        assert (await client.send()).accepted
    assert otelml.stop() == 0
    assert sorted(written_span_numbers(path)) == list(range(1, 2 * BIG_REQUEST + 1))
    lost = [line for line in otelml.log().splitlines() if "write_failed" in line]
    assert len(lost) == 1 and "exporter file" in lost[0] and f"dropping {BIG_REQUEST} spans" in lost[0]
