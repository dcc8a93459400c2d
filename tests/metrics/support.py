"""Hand-made OTLP batches for the metrics tests: metric points, and scored spans as an anomaly processor writes them."""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml import conventions
from otelml.component import ComponentID, CreateSettings, Kind
from otelml.telemetry import Telemetry

_VALUE_FIELDS = {str: "string_value", float: "double_value", int: "int_value", bool: "bool_value"}


def put(attributes, items: dict) -> None:
    """Add ``items`` to a repeated KeyValue, each value typed by its Python type."""
    for key, value in items.items():
        setattr(attributes.add(key=key).value, _VALUE_FIELDS[type(value)], value)


def metrics_request(resource: dict | None = None, scope: str = "test") -> tuple[ExportMetricsServiceRequest, object]:
    """An empty metrics request with one resource and scope; returns it and the scope's metric list."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    put(resource_metrics.resource.attributes, resource or {"service.name": "checkout"})
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = scope
    return request, scope_metrics.metrics


def scored_spans(service: str, spans: list[dict]) -> ExportTraceServiceRequest:
    """Spans of one service, each ``{"name", "score", "anomaly"?, "forecast"?, "open"?, "predicted"?, "trace_id"?}``."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    put(resource_spans.resource.attributes, {"service.name": service})
    records = resource_spans.scope_spans.add().spans
    for number, spec in enumerate(spans):
        span = records.add(
            name=spec["name"],
            start_time_unix_nano=10**18 + number * 10**6,
            end_time_unix_nano=10**18 + number * 10**6 + 5 * 10**6,
            trace_id=spec.get("trace_id", number.to_bytes(16, "big")),
            span_id=(number + 1).to_bytes(8, "big"),
        )
        put(
            span.attributes,
            {
                conventions.SCORE: float(spec["score"]),
                conventions.ANOMALY: spec.get("anomaly", False),
                conventions.FORECAST: float(spec.get("forecast", 0.0)),
                conventions.PREDICTED: spec.get("predicted", False),
            },
        )
        if spec.get("open"):
            put(span.attributes, {conventions.INCIDENT_OPEN: True})
    return request


def settings(kind: Kind, type_: str, name: str = "", telemetry: Telemetry | None = None) -> CreateSettings:
    return CreateSettings(ComponentID(type_, name), kind, telemetry or Telemetry())


def attributes_of(point) -> dict:
    return {kv.key: kv.value.string_value for kv in point.attributes}
