"""Building batches and processors for the anomaly tests."""

from __future__ import annotations

import dataclasses

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.pdata import Signal
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.processor import AnomalyProcessor
from otelml.telemetry import Telemetry
from tests.conftest import Collect

START = 1_700_000_000.0  # a Tuesday, 22:13 UTC


def make_processor(
    signal: Signal = Signal.TRACES, telemetry: Telemetry | None = None, name: str = "", **settings
) -> AnomalyProcessor:
    config = AnomalyConfig.model_validate(settings)
    create = CreateSettings(ComponentID("anomaly", name), Kind.PROCESSOR, telemetry or Telemetry())
    return AnomalyProcessor(create, config, signal, Collect())


_VALUE_FIELDS = {str: "string_value", float: "double_value", int: "int_value"}


def _set(attributes, key: str, value) -> None:
    setattr(attributes.add(key=key).value, _VALUE_FIELDS[type(value)], value)


@dataclasses.dataclass
class SpanSpec:
    service: str
    name: str
    when: float
    duration_ms: float
    error: bool = False


def traces(spans: list[SpanSpec]) -> ExportTraceServiceRequest:
    """One resource per service (in first-seen order), spans in the given order."""
    request = ExportTraceServiceRequest()
    scopes = {}
    for number, spec in enumerate(spans):
        if spec.service not in scopes:
            resource = request.resource_spans.add()
            _set(resource.resource.attributes, "service.name", spec.service)
            scopes[spec.service] = resource.scope_spans.add()
        span = scopes[spec.service].spans.add()
        span.name = spec.name
        span.trace_id = number.to_bytes(16, "big")
        span.span_id = (number + 1).to_bytes(8, "big")
        span.end_time_unix_nano = int(spec.when * 1e9)
        span.start_time_unix_nano = span.end_time_unix_nano - int(spec.duration_ms * 1e6)
        if spec.error:
            span.status.code = 2
    return request


def logs(records: list[dict], resource: dict | None = None) -> ExportLogsServiceRequest:
    """Log records given as ``{"when": s, "severity": n, "attributes": {...}, "resource": {...}}``;
    records sharing a resource are grouped under it."""
    request = ExportLogsServiceRequest()
    scopes = {}
    for spec in records:
        attributes_of_resource = {**(resource or {}), **spec.get("resource", {})}
        identity = tuple(sorted(attributes_of_resource.items()))
        if identity not in scopes:
            resource_logs = request.resource_logs.add()
            for key, value in attributes_of_resource.items():
                _set(resource_logs.resource.attributes, key, value)
            scopes[identity] = resource_logs.scope_logs.add()
        record = scopes[identity].log_records.add()
        record.time_unix_nano = int(spec["when"] * 1e9)
        record.severity_number = spec.get("severity", 9)
        for key, value in spec.get("attributes", {}).items():
            _set(record.attributes, key, value)
    return request


def records_of(batch) -> list:
    if isinstance(batch, ExportTraceServiceRequest):
        return [s for rs in batch.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return [r for rl in batch.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def attribute(record, key: str):
    """The Python value of one attribute of a span or log record (None when absent)."""
    for kv in record.attributes:
        if kv.key == key:
            kind = kv.value.WhichOneof("value")
            return getattr(kv.value, kind)
    return None


def outputs(batch, key: str = "otelml.score") -> list:
    return [attribute(record, key) for record in records_of(batch)]
