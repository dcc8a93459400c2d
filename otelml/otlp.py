"""OTLP protocol facts shared by the otlp receiver and the otlp/otlphttp exporters."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otelml.pdata import Signal

GRPC_SERVICES = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
}
RESPONSE_TYPES: dict[Signal, Any] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceResponse,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceResponse,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceResponse,
}
REJECTED_FIELDS = {Signal.TRACES: "rejected_spans", Signal.LOGS: "rejected_log_records", Signal.METRICS: "rejected_data_points"}


def partial_success_response(signal: Signal, rejected: int = 0, message: str = "") -> Any:
    """An Export response, reporting ``rejected`` items when there are any."""
    response = RESPONSE_TYPES[signal]()
    if rejected:
        setattr(response.partial_success, REJECTED_FIELDS[signal], rejected)
        response.partial_success.error_message = message
    return response


def rejected_items(signal: Signal, response) -> tuple[int, str]:
    """Items a server refused in an otherwise successful Export, with its message."""
    partial = response.partial_success
    return getattr(partial, REJECTED_FIELDS[signal]), partial.error_message
