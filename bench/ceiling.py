"""The ceiling: what decoding and re-encoding the same OTLP requests costs in one Python process."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.load import Workload


def measure_ceiling(workload: Workload, seconds: float) -> dict:
    spans = 0
    cpu_start, wall_start = time.process_time(), time.monotonic()
    index = 0
    while time.monotonic() - wall_start < seconds:
        request = ExportTraceServiceRequest.FromString(workload.requests[index % len(workload.requests)])
        request.SerializeToString()
        spans += workload.spans_per_request
        index += 1
    cpu = time.process_time() - cpu_start
    return {
        "system": "ceiling",
        "spans_per_second": spans / (time.monotonic() - wall_start),
        "spans_per_cpu_second": spans / cpu,
        "cpu_seconds": cpu,
        "spans": spans,
    }
