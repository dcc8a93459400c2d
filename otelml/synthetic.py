"""Realistic OTLP batches built directly as protobuf, for load tests and benchmarks.

Unlike :mod:`otelml.generator` (the OpenTelemetry SDK, paced in real time),
this builds whole Export requests as fast as possible, deterministically
from a seed: ``services`` x ``operations`` keys, about ten attributes per
span, log-normal durations, and a chosen share of anomalous (20x slower,
failing) spans.
"""

from __future__ import annotations

import random

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otelml.encoding import set_any_value

BASE_TIME_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def _set(attributes, key: str, value) -> None:
    set_any_value(attributes.add(key=key).value, value)


def _per_service(total: int, services: int):
    """(service number, record count) for ``total`` records spread evenly over ``services``."""
    for service in range(services):
        count = total // services + (1 if service < total % services else 0)
        if count:
            yield service, count


def make_trace_request(
    spans: int = 1000,
    services: int = 50,
    operations: int = 20,
    seed: int = 0,
    anomaly_rate: float = 0.001,
    start_ns: int = BASE_TIME_NS,
    spacing_ns: int = 1_000_000,
) -> ExportTraceServiceRequest:
    """One request of ``spans`` spans spread over ``services`` resources.

    >>> request = make_trace_request(spans=10, services=2, seed=1)
    >>> sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    10
    """
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    index = 0
    for service, count in _per_service(spans, services):
        resource_spans = request.resource_spans.add()
        _set(resource_spans.resource.attributes, "service.name", f"service-{service}")
        _set(resource_spans.resource.attributes, "service.version", "1.4.2")
        _set(resource_spans.resource.attributes, "host.name", f"host-{service % 7}")
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "otelml.synthetic"
        for _ in range(count):
            operation = rng.randrange(operations)
            anomalous = rng.random() < anomaly_rate
            median_ms = 5.0 + 3.0 * operation
            duration_ms = median_ms * rng.lognormvariate(0.0, 0.3) * (20.0 if anomalous else 1.0)
            start = start_ns + index * spacing_ns
            span = scope_spans.spans.add(
                trace_id=rng.getrandbits(128).to_bytes(16, "big"),
                span_id=rng.getrandbits(64).to_bytes(8, "big"),
                name=f"operation-{operation}",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=start + int(duration_ms * 1e6),
            )
            attributes = span.attributes
            _set(attributes, "http.request.method", "GET" if operation % 3 else "POST")
            _set(attributes, "http.route", f"/api/v1/resource-{operation}")
            _set(attributes, "http.response.status_code", 500 if anomalous else 200)
            _set(attributes, "url.scheme", "https")
            _set(attributes, "server.address", f"service-{service}.internal")
            _set(attributes, "server.port", 8080)
            _set(attributes, "client.address", f"10.1.{rng.randrange(4)}.{rng.randrange(1, 255)}")
            _set(attributes, "user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
            _set(attributes, "network.protocol.version", "1.1")
            _set(attributes, "app.request.size", rng.randrange(100, 5000))
            if anomalous:
                span.status.code = Status.STATUS_CODE_ERROR
            index += 1
    return request


def make_logs_request(
    records: int = 1000,
    services: int = 50,
    seed: int = 0,
    error_rate: float = 0.01,
    start_ns: int = BASE_TIME_NS,
    spacing_ns: int = 1_000_000,
) -> ExportLogsServiceRequest:
    """One request of ``records`` log records spread over ``services`` resources."""
    rng = random.Random(seed)
    request = ExportLogsServiceRequest()
    index = 0
    for service, count in _per_service(records, services):
        resource_logs = request.resource_logs.add()
        _set(resource_logs.resource.attributes, "service.name", f"service-{service}")
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = "otelml.synthetic"
        for _ in range(count):
            failing = rng.random() < error_rate
            record = scope_logs.log_records.add(
                time_unix_nano=start_ns + index * spacing_ns,
                severity_number=17 if failing else 9,
                severity_text="ERROR" if failing else "INFO",
            )
            record.body.string_value = "request failed" if failing else "request served"
            _set(record.attributes, "client.address", f"10.1.{rng.randrange(4)}.{rng.randrange(1, 255)}")
            _set(record.attributes, "duration_ms", round(rng.lognormvariate(2.0, 0.4), 3))
            index += 1
    return request
