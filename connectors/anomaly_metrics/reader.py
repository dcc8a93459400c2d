"""Reading scored records (and the anomaly processor's otelml.* gauges) into the aggregator.

Spans and log records are read for their ``otelml.*`` attributes and the
dimensions; on metrics, the data points of the gauges the anomaly processor
writes beside each scored metric (``otelml.score``, ``otelml.anomaly``, ...)
are read, each counting on its own.
"""

from __future__ import annotations

import time

from otelml import conventions
from otelml.connectors.anomaly_metrics.aggregate import Aggregator
from otelml.pdata import Batch, Signal
from otelml.references import Reference, any_value_number, any_value_text, find_attributes, record_text

SCORED = frozenset({conventions.SCORE, conventions.ANOMALY, conventions.FORECAST, conventions.PREDICTED,
                    conventions.INCIDENT_OPEN})


class ScoredReader:
    """Feeds one signal's scored records into an :class:`Aggregator`, keyed by ``dimensions``.

    Examples
    --------
    >>> from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    >>> from otelml.references import parse_key
    >>> request = ExportLogsServiceRequest()
    >>> record = request.resource_logs.add().scope_logs.add().log_records.add()
    >>> score = record.attributes.add(key="otelml.score"); score.value.double_value = 0.7
    >>> aggregator = Aggregator([0.5], max_keys=10, max_exemplars=0, delta=False, namespace="")
    >>> ScoredReader(Signal.LOGS, [parse_key("log.severity_text")]).read(request, aggregator)
    1
    >>> [(k.attributes, k.bucket_counts) for k in aggregator.keys.values()]
    [([('log.severity_text', ''), ('otelml.key', 'log.severity_text=')], [0, 1])]
    """

    def __init__(self, signal: Signal, dimensions: list[Reference]):
        self.signal = signal
        self.dimensions = dimensions
        self.resource_refs = [r for r in dimensions if r.level == "resource"]
        self.scope_refs = [r for r in dimensions if r.level == "scope"]
        self.record_refs = [r for r in dimensions if r.level == "record"]
        internal = self.resource_refs + self.scope_refs + self.record_refs
        self.order = [internal.index(r) for r in dimensions]
        self.record_names = SCORED | {r.attribute for r in self.record_refs if r.attribute}

    def read(self, batch: Batch, aggregator: Aggregator) -> int:
        """Count every scored record of ``batch``; returns how many were."""
        now = time.monotonic()
        read = 0
        for resource_data in getattr(batch, self.signal.resource_field):
            resource = resource_data.resource
            resource_key = resource.SerializeToString(deterministic=True)
            aggregator.resources.setdefault(resource_key, resource)
            outer = self._parts(resource.attributes, self.resource_refs)
            if self.signal is Signal.METRICS:
                for scope_data in resource_data.scope_metrics:
                    inner = outer + self._scope_parts(scope_data.scope)
                    read += self._read_points(scope_data.metrics, resource_key, inner, aggregator, now)
                continue
            traces = self.signal is Signal.TRACES
            for scope_data in (resource_data.scope_spans if traces else resource_data.scope_logs):
                inner = outer + self._scope_parts(scope_data.scope)
                for record in (scope_data.spans if traces else scope_data.log_records):
                    found = find_attributes(record.attributes, self.record_names)
                    if conventions.SCORE not in found:
                        continue
                    parts = inner + tuple(record_text(record, r, found) for r in self.record_refs)
                    time_ns = record.end_time_unix_nano if traces else (record.time_unix_nano or record.observed_time_unix_nano)
                    aggregator.observe(
                        aggregator.key(resource_key, parts, lambda: self._attributes(parts), now),
                        score=_number(found, conventions.SCORE), anomaly=_flag(found, conventions.ANOMALY),
                        incident=_flag(found, conventions.INCIDENT_OPEN), predicted=_flag(found, conventions.PREDICTED),
                        forecast=_number(found, conventions.FORECAST), time_ns=time_ns,
                        trace_id=record.trace_id, span_id=record.span_id)
                    read += 1
        return read

    def _read_points(self, metrics, resource_key: bytes, inner: tuple, aggregator: Aggregator, now: float) -> int:
        read = 0
        for metric in metrics:
            data = metric.WhichOneof("data")
            if metric.name not in SCORED or data not in ("gauge", "sum"):
                continue
            for point in getattr(metric, data).data_points:
                found = find_attributes(point.attributes, self.record_names)
                parts = inner + tuple(any_value_text(found[r.attribute]) if r.attribute in found else "" for r in self.record_refs)
                value = point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)
                aggregator.observe(
                    aggregator.key(resource_key, parts, lambda: self._attributes(parts), now),
                    score=value if metric.name == conventions.SCORE else None,
                    forecast=value if metric.name == conventions.FORECAST else None,
                    anomaly=metric.name == conventions.ANOMALY and value >= 0.5,
                    incident=metric.name == conventions.INCIDENT_OPEN and value >= 0.5,
                    predicted=metric.name == conventions.PREDICTED and value >= 0.5)
                read += 1
        return read

    def _parts(self, attributes, references: list[Reference]) -> tuple:
        if not references:
            return ()
        found = find_attributes(attributes, frozenset(r.attribute for r in references))
        return tuple(any_value_text(found[r.attribute]) if r.attribute in found else "" for r in references)

    def _scope_parts(self, scope) -> tuple:
        return tuple(scope.name if r.field == "scope.name" else scope.version for r in self.scope_refs)

    def _attributes(self, parts: tuple) -> list[tuple[str, str]]:
        """A new key's data point attributes: each dimension, then ``otelml.key`` describing them all."""
        named = [(r.label, parts[i]) for r, i in zip(self.dimensions, self.order)]
        return named + [(conventions.KEY, " ".join(f"{label}={value}" for label, value in named))]


def _number(found: dict, name: str) -> float | None:
    return any_value_number(found[name]) if name in found else None


def _flag(found: dict, name: str) -> bool:
    return name in found and found[name].bool_value
