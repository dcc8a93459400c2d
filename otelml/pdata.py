"""Telemetry data as it flows through a pipeline: whole OTLP protobuf batches.

A batch is an ``Export*ServiceRequest`` message (the same wire format as
``TracesData``/``LogsData``/``MetricsData``). Helpers here count, split and
merge batches and translate them to and from OTLP/JSON; they walk the
resource and scope levels only, never turning each record into a dict.
"""

from __future__ import annotations

import enum
import base64
import json
from typing import Union

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

Batch = Union[ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest]


class Signal(str, enum.Enum):
    TRACES = "traces"
    LOGS = "logs"
    METRICS = "metrics"

    @property
    def request_type(self) -> type[Batch]:
        return _REQUEST_TYPES[self]

    @property
    def item_name(self) -> str:
        """The collector's name for one item, used in metric names."""
        return _ITEM_NAMES[self]

    @property
    def resource_field(self) -> str:
        return _RESOURCE_FIELDS[self]

    @property
    def scope_field(self) -> str:
        """The field of a resource entry that lists its scopes (``scope_spans``, ...)."""
        return _SCOPE_FIELDS[self]

    @property
    def record_field(self) -> str:
        """The field of a scope entry that lists its records (``spans``, ``log_records``, ``metrics``)."""
        return _RECORD_FIELDS[self]

    @staticmethod
    def of(batch: Batch) -> "Signal":
        return _SIGNAL_OF_TYPE[type(batch)]


_REQUEST_TYPES = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
}
_SIGNAL_OF_TYPE = {v: k for k, v in _REQUEST_TYPES.items()}
_ITEM_NAMES = {Signal.TRACES: "spans", Signal.LOGS: "log_records", Signal.METRICS: "metric_points"}
_RESOURCE_FIELDS = {Signal.TRACES: "resource_spans", Signal.LOGS: "resource_logs", Signal.METRICS: "resource_metrics"}
# Per signal: the scope-level list field, and the record list inside it.
_SCOPE_FIELDS = {Signal.TRACES: "scope_spans", Signal.LOGS: "scope_logs", Signal.METRICS: "scope_metrics"}
_RECORD_FIELDS = {Signal.TRACES: "spans", Signal.LOGS: "log_records", Signal.METRICS: "metrics"}
_METRIC_DATA_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def _metric_points(metric) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def record_items(record, signal: Signal) -> int:
    """The items one record holds: 1 for a span or log record, its data points for a metric."""
    return _metric_points(record) if signal is Signal.METRICS else 1


def count_items(batch: Batch) -> int:
    """Spans, log records or metric data points in ``batch``."""
    signal = Signal.of(batch)
    scope_field = _SCOPE_FIELDS[signal]
    record_field = _RECORD_FIELDS[signal]
    total = 0
    for resource in getattr(batch, signal.resource_field):
        for scope in getattr(resource, scope_field):
            records = getattr(scope, record_field)
            if signal is Signal.METRICS:
                total += sum(_metric_points(m) for m in records)
            else:
                total += len(records)
    return total


def merge(batches: list[Batch]) -> Batch:
    """The resources of all ``batches``, in order, in the first one.

    The first batch is extended in place (copying it too would cost as much
    as the whole merge of its followers), so the caller must own it.
    """
    merged = batches[0]
    for batch in batches[1:]:
        merged.MergeFrom(batch)
    return merged


def split(batch: Batch, max_items: int) -> list[Batch]:
    """Cut ``batch`` into batches of at most ``max_items`` items each.

    Resource and scope are repeated in every piece that holds some of their
    records. A metric is counted by its data points and is cut between its
    points only when it alone exceeds ``max_items``.
    """
    if max_items <= 0 or count_items(batch) <= max_items:
        return [batch]
    signal = Signal.of(batch)
    splitter = _Splitter(signal, max_items)
    for resource in getattr(batch, signal.resource_field):
        for scope in getattr(resource, _SCOPE_FIELDS[signal]):
            records = getattr(scope, _RECORD_FIELDS[signal])
            if signal is Signal.METRICS:
                for metric in records:
                    splitter.add_metric(resource, scope, metric)
            else:
                splitter.add_records(resource, scope, records)
    return splitter.finish()


class _Splitter:
    """Fills pieces of at most ``max_items`` items, reusing the last resource/scope copy."""

    def __init__(self, signal: Signal, max_items: int):
        self.signal = signal
        self.max_items = max_items
        self.pieces: list[Batch] = []
        self._new_piece()

    def _new_piece(self):
        self.current = self.signal.request_type()
        self.room = self.max_items
        self._sources = (None, None)
        self._out_scope = None

    def _scope_for(self, resource, scope):
        """The record list of ``scope`` in the current piece, created on first use."""
        if self._sources[0] is not resource or self._sources[1] is not scope or self._out_scope is None:
            resources = getattr(self.current, self.signal.resource_field)
            if self._sources[0] is resource and len(resources):
                out_resource = resources[-1]
            else:
                out_resource = resources.add()
                out_resource.resource.CopyFrom(resource.resource)
                out_resource.schema_url = resource.schema_url
            out_scope = getattr(out_resource, _SCOPE_FIELDS[self.signal]).add()
            out_scope.scope.CopyFrom(scope.scope)
            out_scope.schema_url = scope.schema_url
            self._sources, self._out_scope = (resource, scope), out_scope
        return getattr(self._out_scope, _RECORD_FIELDS[self.signal])

    def _make_room(self, wanted: int):
        if self.room < wanted and self.room < self.max_items:
            self.pieces.append(self.current)
            self._new_piece()

    def add_records(self, resource, scope, records):
        start = 0
        while start < len(records):
            self._make_room(1)
            take = records[start:start + self.room]
            self._scope_for(resource, scope).extend(take)
            start += len(take)
            self.room -= len(take)

    def add_metric(self, resource, scope, metric):
        points = _metric_points(metric)
        self._make_room(points)
        if points <= self.room:
            self._scope_for(resource, scope).append(metric)
            self.room -= points
            return
        kind = metric.WhichOneof("data")
        all_points = getattr(metric, kind).data_points
        start = 0
        while start < points:
            self._make_room(1)
            part = self._scope_for(resource, scope).add()
            part.CopyFrom(metric)
            take = all_points[start:start + self.room]
            target = getattr(part, kind).data_points
            del target[:]
            target.extend(take)
            start += len(take)
            self.room -= len(take)

    def finish(self) -> list[Batch]:
        if self.room < self.max_items:
            self.pieces.append(self.current)
        return self.pieces


# OTLP/JSON differs from protobuf's canonical JSON mapping in one way that
# matters: trace and span IDs are hex strings, not base64 (OTLP spec,
# "JSON Protobuf Encoding"). These are the fields that carry such IDs.
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def _convert_ids(node, convert):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = convert(value)
            elif isinstance(value, (dict, list)):
                _convert_ids(value, convert)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _convert_ids(value, convert)


def _base64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _hex_to_base64(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"invalid hex ID {value[:40]!r}") from None
    return base64.b64encode(raw).decode()


def to_json_dict(batch: Batch) -> dict:
    """The OTLP/JSON form of ``batch`` (camelCase keys, hex IDs, integer enums)."""
    document = json_format.MessageToDict(batch, use_integers_for_enums=True)
    _convert_ids(document, _base64_to_hex)
    return document


def to_json(batch: Batch) -> bytes:
    return json.dumps(to_json_dict(batch), separators=(",", ":")).encode()


def load_json(data: bytes | str):
    """The JSON document in ``data``; raises ``ValueError`` with a readable message when it is not JSON."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"invalid JSON: {error}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


def from_json(data: bytes | str | dict, signal: Signal) -> Batch:
    """Parse OTLP/JSON; raises ``ValueError`` with a readable message when it is not."""
    document = load_json(data) if isinstance(data, (bytes, str)) else data
    if not isinstance(document, dict):
        raise ValueError("invalid OTLP/JSON: the top level must be an object")
    try:
        _convert_ids(document, _hex_to_base64)
        # Unknown fields are ignored, as the OTLP specification requires.
        return json_format.ParseDict(document, signal.request_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as error:
        raise ValueError(f"invalid OTLP/JSON: {error}") from None


def from_proto(data: bytes, signal: Signal) -> Batch:
    """Parse OTLP protobuf; raises ``ValueError`` when it is not."""
    batch = signal.request_type()
    try:
        batch.ParseFromString(data)
    except Exception as error:  # DecodeError, or RecursionError on hostile nesting
        raise ValueError(f"invalid OTLP protobuf: {error}") from None
    return batch
