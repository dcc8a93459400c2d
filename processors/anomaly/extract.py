"""Reading what the models need from a whole OTLP batch, and nothing else.

:class:`BatchReader` walks resources, scopes and records once and fills
parallel arrays (key id, target, time, ...). Resource and scope parts of
the key are read once per resource or scope; record attributes are scanned
only when a reference needs them, and when none does each field is read for
a whole scope at once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from otelml.conventions import TEMPLATE_ID
from otelml.pdata import Batch, Signal, record_times, scopes
from otelml.processors.anomaly.novelty import template_code
from otelml.references import (
    DURATION,
    NOVELTY,
    RATE,
    SEVERITY_NUMBER,
    Reference,
    any_value_number,
    any_value_text,
    check_signal,
    find_attributes,
    record_text,
)

SEVERITY_ERROR = 17  # OpenTelemetry severity numbers 17-20 are ERROR
STATUS_ERROR = Status.STATUS_CODE_ERROR
# The record attributes found when none are looked up (shared, never written to).
_NO_ATTRIBUTES: dict[str, Any] = {}


@dataclasses.dataclass
class Columns:
    """One batch's scorable records: the records in batch order, and numpy arrays parallel to them.

    ``keys`` lists the batch's distinct keys in first-seen order; ``key_ids``
    gives each record's place in it. ``actual`` is the target as read (0 for
    ``rate``, and the template's code for ``novelty``: the processor computes both).
    """

    records: list
    keys: list[tuple]
    key_ids: np.ndarray
    actual: np.ndarray
    times: np.ndarray
    # Filled only when a feature needs them.
    errors: list[bool]
    attributes: list[dict]
    # Records passed through unscored because their target is missing (or a span ends before it starts).
    skipped: int

    def subset(self, kept: np.ndarray) -> Columns:
        """The columns of the records at the indices ``kept`` (the keys stay, some may have no record left)."""
        indices = kept.tolist()
        return Columns(
            [self.records[i] for i in indices],
            self.keys,
            self.key_ids[kept],
            self.actual[kept],
            self.times[kept],
            [self.errors[i] for i in indices] if self.errors else self.errors,
            [self.attributes[i] for i in indices] if self.attributes else self.attributes,
            self.skipped + len(self.records) - len(indices),
        )


class _Gathered:
    """What the readers collect while walking a batch, as Python lists."""

    def __init__(self) -> None:
        self.records: list = []
        self.keys: dict[tuple, int] = {}
        self.key_ids: list[int] = []
        self.actual: list[float] = []
        self.errors: list[bool] = []
        self.attributes: list[dict] = []
        self.skipped = 0

    def add_keys(self, outer: tuple, record_parts: list) -> None:
        """The key ids of records whose keys are ``outer`` plus one part each (a tuple, or a text)."""
        keys = self.keys
        if record_parts and not isinstance(record_parts[0], tuple):
            record_parts = [(part,) for part in record_parts]
        local = {}
        for part in dict.fromkeys(record_parts):
            key = outer + part
            local[part] = keys.setdefault(key, len(keys))
        self.key_ids.extend(map(local.__getitem__, record_parts))


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
    need_errors
        Fill :attr:`Columns.errors`.
    feature_attributes
        Record attributes to collect as numbers into :attr:`Columns.attributes`.

    Examples
    --------
    >>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    >>> from otelml.references import parse_key, parse_target
    >>> request = ExportTraceServiceRequest()
    >>> spans = request.resource_spans.add().scope_spans.add().spans
    >>> for name, nanos in (("a", 2_000_000), ("b", 1_000_000), ("a", 0)):
    ...     span = spans.add(name=name, start_time_unix_nano=10**18, end_time_unix_nano=10**18 + nanos)
    >>> reader = BatchReader(Signal.TRACES, [parse_key("span.name")], parse_target("duration"))
    >>> columns = reader.read(request)
    >>> columns.keys, columns.key_ids.tolist(), columns.actual.tolist()
    ([('a',), ('b',)], [0, 1, 0], [2.0, 1.0, 0.0])
    """

    def __init__(
        self,
        signal: Signal,
        key: list[Reference],
        target: Reference,
        need_errors: bool = False,
        feature_attributes: tuple[str, ...] = (),
    ):
        for reference in [*key, target]:
            check_signal(reference, signal)
        self.signal = signal
        self.key = key
        self.target = target
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
            + ([TEMPLATE_ID] if target.field == NOVELTY else [])
            + list(self.feature_attributes)
        )
        # Without record attributes to look up, each field is read for a whole scope at once.
        self.by_field = not self.record_attribute_names and not need_errors and target.field in (DURATION, SEVERITY_NUMBER, RATE)

    def describe(self, key: tuple) -> str:
        """``service.name=checkout span.name=GET /cart`` for an internal key tuple."""
        return " ".join(f"{ref.label}={key[i]}" for ref, i in zip(self.key, self.key_order))

    def read(self, batch: Batch) -> Columns:
        gathered = _Gathered()
        read_records = self._read_fields if self.by_field else self._read_each
        resource_entry, resource_part = None, ()
        for entry, scope_entry, records in scopes(batch):
            if entry is not resource_entry:
                resource_entry, resource_part = entry, self._resource_part(entry.resource)
            read_records(records, resource_part + self._scope_part(scope_entry.scope), gathered)
        actual = np.asarray(gathered.actual, dtype=float)
        return Columns(
            gathered.records,
            list(gathered.keys),
            np.asarray(gathered.key_ids, dtype=np.intp),
            actual,
            _seconds(record_times(gathered.records, self.signal)),
            gathered.errors,
            gathered.attributes,
            gathered.skipped,
        )

    def _resource_part(self, resource) -> tuple:
        if not self.resource_refs:
            return ()
        found = find_attributes(resource.attributes, frozenset(r.attribute for r in self.resource_refs))
        return tuple(r.attribute_text(found) for r in self.resource_refs)

    def _scope_part(self, scope) -> tuple:
        return tuple(scope.name if r.field == "scope.name" else scope.version for r in self.scope_refs)

    def _read_fields(self, records, outer: tuple, gathered: _Gathered) -> None:
        """A scope's records, one field at a time (no record attributes are needed)."""
        # A list first: iterating a list is cheaper than iterating the protobuf container again for each field.
        records = list(records)
        field = self.target.field
        actual: list[float]
        if field in ("duration", "severity_number"):
            readings: list[float | None]
            if field == "duration":
                # A span that ends before it starts has no duration.
                readings = [
                    nanos / 1e6 if (nanos := record.end_time_unix_nano - record.start_time_unix_nano) >= 0 else None
                    for record in records
                ]
            else:
                # An unset severity is no reading.
                readings = [float(record.severity_number) or None for record in records]
            if None in readings:
                kept = [number for number, value in enumerate(readings) if value is not None]
                gathered.skipped += len(readings) - len(kept)
                records = [records[number] for number in kept]
            actual = [value for value in readings if value is not None]
        else:
            # The rate is known only from the key's past: the processor fills it in.
            actual = [0.0] * len(records)
        if not self.record_refs:
            gathered.add_keys(outer, [()] * len(actual))
        elif len(self.record_refs) == 1:
            reference = self.record_refs[0]
            if reference.field == "span.name":
                gathered.add_keys(outer, [record.name for record in records])
            else:
                gathered.add_keys(outer, [record_text(record, reference, None) for record in records])
        else:
            gathered.add_keys(outer, [tuple([record_text(record, r, None) for r in self.record_refs]) for record in records])
        gathered.records.extend(records)
        gathered.actual.extend(actual)

    def _read_each(self, records, outer: tuple, gathered: _Gathered) -> None:
        """A scope's records one by one: their attributes are looked up."""
        traces = self.signal is Signal.TRACES
        target_attribute, target_field = self.target.attribute, self.target.field
        attribute_names = self.record_attribute_names
        record_refs = self.record_refs
        need_errors = self.need_errors
        feature_attributes = self.feature_attributes
        parts = []
        add_record, add_actual = gathered.records.append, gathered.actual.append
        for record in records:
            found = find_attributes(record.attributes, attribute_names) if attribute_names else _NO_ATTRIBUTES
            if target_attribute:
                value = any_value_number(found[target_attribute]) if target_attribute in found else None
            elif target_field == DURATION:
                nanos = record.end_time_unix_nano - record.start_time_unix_nano
                value = nanos / 1e6 if nanos >= 0 else None
            elif target_field == SEVERITY_NUMBER:
                value = float(record.severity_number) if record.severity_number else None
            elif target_field == RATE:
                value = 0.0
            elif target_field == NOVELTY:
                value = template_code(any_value_text(found[TEMPLATE_ID])) if TEMPLATE_ID in found else None
            else:
                value = any_value_number(record.body)
            if value is None or not math.isfinite(value):
                gathered.skipped += 1
                continue
            parts.append(tuple([record_text(record, r, found) for r in record_refs]))
            add_record(record)
            add_actual(value)
            if need_errors:
                gathered.errors.append(record.status.code == STATUS_ERROR if traces else record.severity_number >= SEVERITY_ERROR)
            if feature_attributes:
                gathered.attributes.append({name: any_value_number(found[name]) for name in feature_attributes if name in found})
        gathered.add_keys(outer, parts)


def _seconds(nanos: list[int]) -> np.ndarray:
    """Record times (:func:`otelml.pdata.record_time`) in seconds since the epoch."""
    times = np.asarray(nanos, dtype=np.uint64).astype(float) / 1e9
    unknown = times == 0
    if unknown.any():
        # Records without any timestamp are placed at arrival, the only time known.
        times[unknown] = time.time()
    return times
