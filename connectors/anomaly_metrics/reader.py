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
from otelml.pdata import Batch, Signal, point_value, record_time, scopes
from otelml.references import KeyReader, Reference, any_value_number, find_attributes

SCORED = frozenset(
    {conventions.SCORE, conventions.ANOMALY, conventions.FORECAST, conventions.PREDICTED, conventions.INCIDENT_OPEN}
)


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
        self.key_reader = KeyReader(dimensions)

    def read(self, batch: Batch, aggregator: Aggregator) -> int:
        """Count every scored record of ``batch``; returns how many were."""
        now = time.monotonic()
        read = 0
        resource_entry, resource_key = None, b""
        for entry, scope_entry, records in scopes(batch):
            resource = entry.resource
            if entry is not resource_entry:
                resource_entry, resource_key = entry, resource.SerializeToString(deterministic=True)
                aggregator.resources.setdefault(resource_key, resource)
            if self.signal is Signal.METRICS:
                read += self._read_points(resource, scope_entry.scope, records, resource_key, aggregator, now)
                continue
            for record, parts in zip(records, self.key_reader.keys(resource, scope_entry.scope, records)):
                found = find_attributes(record.attributes, SCORED)
                if conventions.SCORE not in found:
                    continue
                aggregator.observe(
                    aggregator.key(resource_key, parts, lambda parts=parts: self._attributes(parts), now),
                    score=_number(found, conventions.SCORE),
                    anomaly=_flag(found, conventions.ANOMALY),
                    incident=_flag(found, conventions.INCIDENT_OPEN),
                    predicted=_flag(found, conventions.PREDICTED),
                    forecast=_number(found, conventions.FORECAST),
                    time_ns=record_time(record, self.signal),
                    trace_id=record.trace_id,
                    span_id=record.span_id,
                )
                read += 1
        return read

    def _read_points(self, resource, scope, metrics, resource_key: bytes, aggregator: Aggregator, now: float) -> int:
        read = 0
        for metric in metrics:
            data = metric.WhichOneof("data")
            if metric.name not in SCORED or data not in ("gauge", "sum"):
                continue
            points = getattr(metric, data).data_points
            for point, parts in zip(points, self.key_reader.keys(resource, scope, points)):
                value = point_value(point)
                aggregator.observe(
                    aggregator.key(resource_key, parts, lambda parts=parts: self._attributes(parts), now),
                    score=value if metric.name == conventions.SCORE else None,
                    forecast=value if metric.name == conventions.FORECAST else None,
                    anomaly=metric.name == conventions.ANOMALY and value >= 0.5,
                    incident=metric.name == conventions.INCIDENT_OPEN and value >= 0.5,
                    predicted=metric.name == conventions.PREDICTED and value >= 0.5,
                )
                read += 1
        return read

    def _attributes(self, parts: tuple) -> list[tuple[str, str]]:
        """A new key's data point attributes: each dimension, then ``otelml.key`` describing them all."""
        named = [(r.label, value) for r, value in zip(self.dimensions, parts)]
        return named + [(conventions.KEY, " ".join(f"{label}={value}" for label, value in named))]


def _number(found: dict, name: str) -> float | None:
    return any_value_number(found[name]) if name in found else None


def _flag(found: dict, name: str) -> bool:
    return name in found and found[name].bool_value
