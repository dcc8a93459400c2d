"""Reading what the models need from a whole OTLP batch, and nothing else.

:class:`BatchReader` walks resources, scopes and records once and fills
parallel lists (record, key, target, time, ...). Resource and scope parts of
the key are read once per resource or scope; record attributes are scanned
only when a reference needs them.
"""

from __future__ import annotations

import dataclasses
import math
import time

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otelml.pdata import Batch, Signal
from otelml.processors.anomaly.references import Reference, check_signal

SEVERITY_ERROR = 17  # OpenTelemetry severity numbers 17-20 are ERROR
STATUS_ERROR = Status.STATUS_CODE_ERROR


def any_value_text(value) -> str:
    """An AnyValue as text, for keys (``""`` when empty)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind in ("array_value", "kvlist_value"):
        return str(getattr(value, kind)).replace("\n", " ").strip()
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return str(getattr(value, kind))


def any_value_number(value) -> float | None:
    """An AnyValue as a float: numbers, booleans and numeric strings; else None."""
    kind = value.WhichOneof("value")
    if kind in ("double_value", "int_value", "bool_value"):
        return float(getattr(value, kind))
    if kind == "string_value":
        try:
            number = float(value.string_value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def find_attributes(attributes, names: frozenset[str]) -> dict:
    """The AnyValues of ``names`` among ``attributes`` (a repeated KeyValue)."""
    return {kv.key: kv.value for kv in attributes if kv.key in names}


def signed_log(value: float) -> float:
    """``log1p`` that keeps the sign, so that negative readings stay usable.

    >>> signed_log(0.0), round(signed_log(-math.e + 1), 6)
    (0.0, -1.0)
    """
    return math.log1p(value) if value >= 0 else -math.log1p(-value)


def signed_exp(value: float) -> float:
    """The inverse of :func:`signed_log`."""
    return math.expm1(value) if value >= 0 else -math.expm1(-value)


@dataclasses.dataclass
class Columns:
    """One batch's scorable records, as parallel lists in batch order."""

    records: list = dataclasses.field(default_factory=list)
    keys: list[tuple] = dataclasses.field(default_factory=list)
    # The target in the models' units (after the transform) and in its own.
    values: list[float] = dataclasses.field(default_factory=list)
    actual: list[float] = dataclasses.field(default_factory=list)
    times: list[float] = dataclasses.field(default_factory=list)
    # Filled only when a feature needs them.
    errors: list[bool] = dataclasses.field(default_factory=list)
    attributes: list[dict] = dataclasses.field(default_factory=list)
    # Records passed through unscored because their target is missing.
    skipped: int = 0


class BatchReader:
    """Extracts key, target, time (and, when asked, error flag and numeric attributes).

    Parameters
    ----------
    signal
        Traces or logs.
    key
        References that identify a stream, in config order.
    target
        The numeric value the models look at.
    log_target
        Score ``signed_log(target)`` instead of the raw value.
    need_errors
        Fill :attr:`Columns.errors`.
    feature_attributes
        Record attributes to collect as numbers into :attr:`Columns.attributes`.
    """

    def __init__(self, signal: Signal, key: list[Reference], target: Reference, log_target: bool,
                 need_errors: bool = False, feature_attributes: tuple[str, ...] = ()):
        for reference in [*key, target]:
            check_signal(reference, signal)
        self.signal = signal
        self.key = key
        self.target = target
        self.log_target = log_target
        self.need_errors = need_errors
        self.feature_attributes = tuple(feature_attributes)
        # Key parts are stored outer (resource, scope) first, then per record;
        # ``key_order`` maps them back to config order for display.
        self.resource_refs = [r for r in key if r.level == "resource"]
        self.scope_refs = [r for r in key if r.level == "scope"]
        self.record_refs = [r for r in key if r.level == "record"]
        internal = self.resource_refs + self.scope_refs + self.record_refs
        self.key_order = [internal.index(r) for r in key]
        self.record_attribute_names = frozenset(
            [r.attribute for r in self.record_refs if r.attribute]
            + ([target.attribute] if target.attribute else [])
            + list(self.feature_attributes))

    def describe(self, key: tuple) -> str:
        """``service.name=checkout span.name=GET /cart`` for an internal key tuple."""
        return " ".join(f"{ref.label}={key[i]}" for ref, i in zip(self.key, self.key_order))

    def read(self, batch: Batch) -> Columns:
        columns = Columns()
        if self.signal is Signal.TRACES:
            for resource_spans in batch.resource_spans:
                outer = self._resource_part(resource_spans.resource)
                for scope_spans in resource_spans.scope_spans:
                    self._read_records(scope_spans.spans, outer + self._scope_part(scope_spans.scope), columns)
        else:
            for resource_logs in batch.resource_logs:
                outer = self._resource_part(resource_logs.resource)
                for scope_logs in resource_logs.scope_logs:
                    self._read_records(scope_logs.log_records, outer + self._scope_part(scope_logs.scope), columns)
        return columns

    def _resource_part(self, resource) -> tuple:
        if not self.resource_refs:
            return ()
        found = find_attributes(resource.attributes, frozenset(r.attribute for r in self.resource_refs))
        return tuple(any_value_text(found[r.attribute]) if r.attribute in found else "" for r in self.resource_refs)

    def _scope_part(self, scope) -> tuple:
        return tuple(scope.name if r.field == "scope.name" else scope.version for r in self.scope_refs)

    def _read_records(self, records, outer: tuple, columns: Columns) -> None:
        traces = self.signal is Signal.TRACES
        target_attribute, target_field = self.target.attribute, self.target.field
        attribute_names = self.record_attribute_names
        record_refs = self.record_refs
        log_target = self.log_target
        need_errors = self.need_errors
        feature_attributes = self.feature_attributes
        # The default span key's record part, read without the general path.
        single_field = record_refs[0].field if len(record_refs) == 1 else None
        add_record, add_key, add_actual = columns.records.append, columns.keys.append, columns.actual.append
        add_value, add_time = columns.values.append, columns.times.append
        for record in records:
            found = find_attributes(record.attributes, attribute_names) if attribute_names else None
            if target_attribute:
                value = any_value_number(found[target_attribute]) if target_attribute in found else None
            elif target_field == "duration":
                nanos = record.end_time_unix_nano - record.start_time_unix_nano
                value = nanos / 1e6 if nanos > 0 else 0.0
            elif target_field == "severity_number":
                value = float(record.severity_number) if record.severity_number else None
            elif target_field == "rate":
                # Known only from the key's past: the processor fills it in.
                value = 0.0
            else:
                value = any_value_number(record.body)
            if value is None or not math.isfinite(value):
                columns.skipped += 1
                continue
            if not record_refs:
                key = outer
            elif single_field == "span.name":
                key = outer + (record.name,)
            else:
                key = outer + tuple([_record_text(record, r, found) for r in record_refs])
            add_record(record)
            add_key(key)
            add_actual(value)
            add_value(signed_log(value) if log_target else value)
            add_time(_record_time(record, traces))
            if need_errors:
                columns.errors.append(record.status.code == STATUS_ERROR if traces else record.severity_number >= SEVERITY_ERROR)
            if feature_attributes:
                columns.attributes.append({name: any_value_number(found[name]) for name in feature_attributes if name in found})


def _record_time(record, traces: bool) -> float:
    """Seconds since the epoch: a span's end, a log's time (or observed time)."""
    nanos = record.end_time_unix_nano if traces else (record.time_unix_nano or record.observed_time_unix_nano)
    # Records without any timestamp are placed at arrival, the only time known.
    return nanos / 1e9 if nanos else time.time()


def _record_text(record, reference: Reference, found: dict) -> str:
    if reference.attribute:
        return any_value_text(found[reference.attribute]) if reference.attribute in found else ""
    field = reference.field
    if field == "span.name":
        return record.name
    if field == "span.kind":
        return Span.SpanKind.Name(record.kind)
    if field == "span.status.code":
        return Status.StatusCode.Name(record.status.code)
    if field == "log.severity_text":
        return record.severity_text
    if field == "log.severity_number":
        return str(record.severity_number)
    if field == "log.event_name":
        return record.event_name
    return any_value_text(record.body)
