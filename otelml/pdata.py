"""Telemetry data as it flows through a pipeline: whole OTLP protobuf batches.

A batch is an ``Export*ServiceRequest`` message (the same wire format as
``TracesData``/``LogsData``/``MetricsData``). Here is the one walk from
resource to scope to records (:func:`scopes`), the one way to build a batch
from records of another (:class:`BatchBuilder`), the one rule for a record's
time (:func:`record_time`), and helpers that count, split and merge batches
and translate them to and from OTLP/JSON. Walks hand out whole scopes of
records, never turning each record into a dict.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

Batch = ExportTraceServiceRequest | ExportLogsServiceRequest | ExportMetricsServiceRequest


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
    def of(batch: Batch) -> Signal:
        return _SIGNAL_OF_TYPE[type(batch)]


_REQUEST_TYPES: dict[Signal, type[Batch]] = {
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


def resources(batch: Batch, signal: Signal | None = None):
    """The resource entries of ``batch`` (``resource_spans``, ``resource_logs`` or ``resource_metrics``).

    ``signal`` is needed only for a message of another class with the same
    schema (such as :func:`otelml.utf8.bytes_schema`'s).
    """
    return getattr(batch, (signal or Signal.of(batch)).resource_field)


def scopes(batch: Batch, signal: Signal | None = None) -> Iterator[tuple[Any, Any, Any]]:
    """``(resource_entry, scope_entry, records)`` for every scope of ``batch``, in order: the walk every component uses.

    ``resource_entry`` is the ``ResourceSpans``/``ResourceLogs``/``ResourceMetrics``
    (its ``resource`` and ``schema_url``), ``scope_entry`` the ``ScopeSpans``/...
    (its ``scope`` and ``schema_url``), ``records`` the scope's spans, log
    records or metrics. All are the batch's own: a walker works on a scope's
    records at a time and may rewrite them in place. Consecutive scopes of
    one resource share one ``resource_entry`` object, so per-resource work
    can be done once (``resource_entry is not previous``). ``signal`` is
    needed only for a message of another class with the same schema.

    >>> batch = Signal.LOGS.request_type()
    >>> resource = batch.resource_logs.add()
    >>> resource.scope_logs.add().log_records.add().severity_number = 9
    >>> resource.scope_logs.add().log_records.add().severity_number = 17
    >>> [record.severity_number for _, _, records in scopes(batch) for record in records]
    [9, 17]
    """
    signal = signal or Signal.of(batch)
    scope_field, record_field = signal.scope_field, signal.record_field
    for resource_entry in getattr(batch, signal.resource_field):
        for scope_entry in getattr(resource_entry, scope_field):
            yield resource_entry, scope_entry, getattr(scope_entry, record_field)


def data_points(metric) -> Any:
    """The data points of a metric, whichever its kind (empty when it has no data)."""
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else ()


def point_value(point) -> float:
    """The number of a gauge's or sum's data point (or an exemplar), whether sent as a double or an integer.

    >>> from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint
    >>> point_value(NumberDataPoint(as_int=7)), point_value(NumberDataPoint(as_double=0.5))
    (7.0, 0.5)
    """
    return point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)


class BatchBuilder:
    """A new batch made of records taken from others, each under a copy of its own resource and scope.

    :meth:`records_for` gives the record list to append to for a source
    scope; the resource and scope are copied once per run of records that
    share them, so taking a scope's records one by one costs no more than
    taking them all at once.

    >>> source = Signal.TRACES.request_type()
    >>> scope = source.resource_spans.add(schema_url="s").scope_spans.add()
    >>> _ = scope.spans.add(name="a"), scope.spans.add(name="b"), scope.spans.add(name="c")
    >>> builder = BatchBuilder(Signal.TRACES)
    >>> for resource_entry, scope_entry, spans in scopes(source):
    ...     for span in spans:
    ...         if span.name != "b":
    ...             _ = builder.records_for(resource_entry, scope_entry).append(span)
    >>> [[s.name for s in ss.spans] for rs in builder.batch.resource_spans for ss in rs.scope_spans]
    [['a', 'c']]
    """

    def __init__(self, signal: Signal):
        self.signal = signal
        self.batch = signal.request_type()
        self._resource_source: Any = None
        self._scope_source: Any = None
        self._resource_copy: Any = None
        self._records: Any = None

    def records_for(self, resource_entry, scope_entry):
        """The record list of the source scope ``scope_entry`` (of ``resource_entry``) in the new batch."""
        if scope_entry is not self._scope_source:
            if resource_entry is not self._resource_source:
                self._resource_copy = getattr(self.batch, self.signal.resource_field).add(
                    resource=resource_entry.resource, schema_url=resource_entry.schema_url
                )
                self._resource_source = resource_entry
            scope_copy = getattr(self._resource_copy, self.signal.scope_field).add(
                scope=scope_entry.scope, schema_url=scope_entry.schema_url
            )
            self._scope_source, self._records = scope_entry, getattr(scope_copy, self.signal.record_field)
        return self._records


# A record's time, by signal: a span's end, a log record's time or else its
# observed time (OTLP allows either to be unset), a metric data point's time.
_RECORD_TIME: dict[Signal, Callable[[Any], int]] = {
    Signal.TRACES: attrgetter("end_time_unix_nano"),
    Signal.LOGS: lambda record: record.time_unix_nano or record.observed_time_unix_nano,
    Signal.METRICS: attrgetter("time_unix_nano"),
}


def record_time(record, signal: Signal) -> int:
    """The time of a span, log record or metric data point in Unix nanoseconds (0 when unknown).

    The one rule every component uses: a span's end, a log record's time or
    else its observed time, a data point's time.

    >>> from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
    >>> record_time(LogRecord(observed_time_unix_nano=5), Signal.LOGS)
    5
    """
    return _RECORD_TIME[signal](record)


def record_times(records, signal: Signal) -> list[int]:
    """:func:`record_time` of each of ``records`` (a scope's records, or a metric's points)."""
    return list(map(_RECORD_TIME[signal], records))


def record_items(record, signal: Signal) -> int:
    """The items one record holds: 1 for a span or log record, its data points for a metric."""
    return len(data_points(record)) if signal is Signal.METRICS else 1


def count_items(batch: Batch) -> int:
    """Spans, log records or metric data points in ``batch``."""
    if Signal.of(batch) is Signal.METRICS:
        return sum(len(data_points(metric)) for _, _, metrics in scopes(batch) for metric in metrics)
    return sum(len(records) for _, _, records in scopes(batch))


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

    >>> batch = Signal.LOGS.request_type()
    >>> records = batch.resource_logs.add().scope_logs.add().log_records
    >>> _ = [records.add() for _ in range(5)]
    >>> [count_items(piece) for piece in split(batch, 2)]
    [2, 2, 1]
    """
    if max_items <= 0 or count_items(batch) <= max_items:
        return [batch]
    splitter = _Splitter(Signal.of(batch), max_items)
    for resource_entry, scope_entry, records in scopes(batch):
        if splitter.signal is Signal.METRICS:
            for metric in records:
                splitter.add_metric(resource_entry, scope_entry, metric)
        else:
            splitter.add_records(resource_entry, scope_entry, records)
    return splitter.finish()


class _Splitter:
    """Fills pieces of at most ``max_items`` items."""

    def __init__(self, signal: Signal, max_items: int):
        self.signal = signal
        self.max_items = max_items
        self.pieces: list[Batch] = []
        self._new_piece()

    def _new_piece(self):
        self.current = BatchBuilder(self.signal)
        self.room = self.max_items

    def _make_room(self, wanted: int):
        if self.room < wanted and self.room < self.max_items:
            self.pieces.append(self.current.batch)
            self._new_piece()

    def add_records(self, resource_entry, scope_entry, records):
        start = 0
        while start < len(records):
            self._make_room(1)
            take = records[start : start + self.room]
            self.current.records_for(resource_entry, scope_entry).extend(take)
            start += len(take)
            self.room -= len(take)

    def add_metric(self, resource_entry, scope_entry, metric):
        all_points = data_points(metric)
        points = len(all_points)
        self._make_room(points)
        if points <= self.room:
            self.current.records_for(resource_entry, scope_entry).append(metric)
            self.room -= points
            return
        start = 0
        while start < points:
            self._make_room(1)
            part = self.current.records_for(resource_entry, scope_entry).add()
            part.CopyFrom(metric)
            take = all_points[start : start + self.room]
            target = data_points(part)
            del target[:]
            target.extend(take)
            start += len(take)
            self.room -= len(take)

    def finish(self) -> list[Batch]:
        if self.room < self.max_items:
            self.pieces.append(self.current.batch)
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
