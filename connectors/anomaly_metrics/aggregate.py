"""Per-key aggregates of scored records, and the OTLP metrics made from them.

A key is one resource plus the values of the connector's dimensions. Each
key holds a histogram of ``otelml.score``, counts of anomalies, of incidents
opened and of predicted incidents, the latest ``otelml.forecast``, and a few
exemplars (trace and span IDs of flagged records). Beyond ``max_keys`` keys,
records go to one ``otelml.key=overflow`` key per resource.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from otelml import conventions

ANOMALY, INCIDENT, PREDICTED = 1, 2, 4  # flags of a record, kept with its exemplar


@dataclasses.dataclass
class Exemplar:
    time_ns: int
    score: float
    trace_id: bytes
    span_id: bytes
    flags: int


class KeyAggregate:
    """What one key has seen since it was created (cumulative) or last exported (delta)."""

    __slots__ = (
        "resource",
        "attributes",
        "bucket_counts",
        "count",
        "total",
        "anomalies",
        "incidents",
        "predicted",
        "forecast",
        "exemplars",
        "start_ns",
        "last_seen",
        "touched",
    )

    def __init__(
        self, resource: bytes, attributes: list[tuple[str, str]], buckets: int, max_exemplars: int, start_ns: int, now: float
    ):
        self.resource = resource
        self.attributes = attributes
        self.bucket_counts = [0] * (buckets + 1)
        self.count = 0
        self.total = 0.0
        self.anomalies = self.incidents = self.predicted = 0
        self.forecast: float | None = None
        self.exemplars: collections.deque[Exemplar] = collections.deque(maxlen=max_exemplars)
        self.start_ns = start_ns
        self.last_seen = now
        self.touched = True

    def reset(self, start_ns: int) -> None:
        """Start a new delta interval."""
        self.bucket_counts = [0] * len(self.bucket_counts)
        self.count = 0
        self.total = 0.0
        self.anomalies = self.incidents = self.predicted = 0
        self.start_ns = start_ns
        self.touched = False


class Aggregator:
    """Keys and their aggregates, bounded by ``max_keys``.

    Parameters
    ----------
    bounds
        Explicit bucket bounds of the score histogram.
    max_keys
        Keys kept; records of further keys count in their resource's overflow key.
    max_exemplars
        Exemplars kept per key between two exports (0: none).
    delta
        Export delta temporality (each export covers the time since the last).
    namespace
        Prefix of the metric names (``otelml.records`` -> ``otelml.records.score``).

    Examples
    --------
    >>> aggregator = Aggregator([0.5], max_keys=1, max_exemplars=0, delta=False, namespace="otelml.records")
    >>> key = aggregator.key(b"", ("checkout",), lambda: [("service.name", "checkout")], now=0.0)
    >>> aggregator.observe(key, score=0.9, anomaly=True)
    >>> aggregator.observe(aggregator.key(b"", ("auth",), lambda: [("service.name", "auth")], now=0.0), score=0.1)
    >>> [(dict(k.attributes), k.count, k.anomalies) for k in aggregator.keys.values()]
    [({'service.name': 'checkout'}, 1, 1), ({'otelml.key': 'overflow'}, 1, 0)]
    """

    def __init__(self, bounds: list[float], max_keys: int, max_exemplars: int, delta: bool, namespace: str):
        self.bounds = list(bounds)
        self.max_keys = max_keys
        self.max_exemplars = max_exemplars
        self.delta = delta
        self.names = {
            suffix: f"{namespace}.{suffix}" if namespace else suffix
            for suffix in (
                conventions.RECORDS_SCORE,
                conventions.RECORDS_ANOMALIES,
                conventions.RECORDS_INCIDENTS,
                conventions.RECORDS_PREDICTED,
                conventions.RECORDS_FORECAST,
            )
        }
        self.resources: dict[bytes, object] = {}
        self.keys: dict[tuple, KeyAggregate] = {}
        self.tracked = 0  # keys other than the overflow ones
        self.overflowed = 0  # records that went to an overflow key
        self.start_ns = 0  # creation time of new keys, set by the caller before each batch

    def key(self, resource: bytes, parts: tuple | None, attributes, now: float) -> KeyAggregate:
        """The aggregate of ``parts`` in ``resource``; ``attributes()`` names it when it is new."""
        aggregate = self.keys.get((resource, parts))
        if aggregate is None:
            if self.tracked >= self.max_keys:
                self.overflowed += 1
                parts, make = None, lambda: [(conventions.KEY, conventions.OVERFLOW_KEY)]
                aggregate = self.keys.get((resource, None))
            else:
                self.tracked += 1
                make = attributes
            if aggregate is None:
                aggregate = self.keys[(resource, parts)] = KeyAggregate(
                    resource, make(), len(self.bounds), self.max_exemplars, self.start_ns, now
                )
        aggregate.last_seen = now
        aggregate.touched = True
        return aggregate

    def observe(
        self,
        aggregate: KeyAggregate,
        score: float | None = None,
        anomaly: bool = False,
        incident: bool = False,
        predicted: bool = False,
        forecast: float | None = None,
        time_ns: int = 0,
        trace_id: bytes = b"",
        span_id: bytes = b"",
    ) -> None:
        """Count one scored record (or one point of a scored metric) in ``aggregate``."""
        if score is not None:
            aggregate.bucket_counts[bisect.bisect_left(self.bounds, score)] += 1
            aggregate.count += 1
            aggregate.total += score
        aggregate.anomalies += anomaly
        aggregate.incidents += incident
        aggregate.predicted += predicted
        if forecast is not None:
            aggregate.forecast = forecast
        flags = ANOMALY * anomaly | INCIDENT * incident | PREDICTED * predicted
        if flags and self.max_exemplars and trace_id and score is not None:
            aggregate.exemplars.append(Exemplar(time_ns, score, trace_id, span_id, flags))

    def expire(self, oldest: float) -> None:
        """Forget keys not seen since ``oldest`` (monotonic seconds)."""
        stale = [key for key, aggregate in self.keys.items() if aggregate.last_seen < oldest]
        for key in stale:
            del self.keys[key]
            self.tracked -= key[1] is not None
        for resource in set(self.resources) - {aggregate.resource for aggregate in self.keys.values()}:
            del self.resources[resource]

    def export(self, now_ns: int) -> ExportMetricsServiceRequest:
        """The metrics of every key (delta: of every key seen since the last export)."""
        request = ExportMetricsServiceRequest()
        by_resource: dict[bytes, list[KeyAggregate]] = {}
        for aggregate in self.keys.values():
            if aggregate.touched or not self.delta:
                by_resource.setdefault(aggregate.resource, []).append(aggregate)
        for resource, aggregates in by_resource.items():
            resource_metrics = request.resource_metrics.add()
            resource_metrics.resource.CopyFrom(self.resources[resource])
            scope_metrics = resource_metrics.scope_metrics.add()
            scope_metrics.scope.name = conventions.METRICS_SCOPE
            self._metrics(scope_metrics.metrics, aggregates, now_ns)
        for aggregate in self.keys.values():
            aggregate.exemplars.clear()
            if self.delta:
                aggregate.reset(now_ns)
        return request

    def _metrics(self, metrics, aggregates: list[KeyAggregate], now_ns: int) -> None:
        temporality = (
            AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
            if self.delta
            else AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        )
        score = metrics.add(
            name=self.names[conventions.RECORDS_SCORE], unit="1", description="Scores of the key's records (otelml.score)."
        )
        score.histogram.aggregation_temporality = temporality
        for aggregate in aggregates:
            point = score.histogram.data_points.add(
                start_time_unix_nano=aggregate.start_ns,
                time_unix_nano=now_ns,
                count=aggregate.count,
                sum=aggregate.total,
                explicit_bounds=self.bounds,
                bucket_counts=aggregate.bucket_counts,
            )
            _fill(point, aggregate, 0)
        for suffix, field, flag, text in (
            (conventions.RECORDS_ANOMALIES, "anomalies", ANOMALY, "Records flagged as anomalies (otelml.anomaly)."),
            (conventions.RECORDS_INCIDENTS, "incidents", INCIDENT, "Incidents opened (otelml.incident.open)."),
            (
                conventions.RECORDS_PREDICTED,
                "predicted",
                PREDICTED,
                "Records predicting an incident (otelml.incident.predicted).",
            ),
        ):
            counter = metrics.add(name=self.names[suffix], unit="{record}", description=text)
            counter.sum.aggregation_temporality = temporality
            counter.sum.is_monotonic = True
            for aggregate in aggregates:
                point = counter.sum.data_points.add(
                    start_time_unix_nano=aggregate.start_ns, time_unix_nano=now_ns, as_int=getattr(aggregate, field)
                )
                _fill(point, aggregate, flag)
        forecasts = [aggregate for aggregate in aggregates if aggregate.forecast is not None]
        if forecasts:
            gauge = metrics.add(
                name=self.names[conventions.RECORDS_FORECAST],
                unit="",
                description="The latest forecast of the key's score (otelml.forecast).",
            )
            for aggregate in forecasts:
                _fill(gauge.gauge.data_points.add(time_unix_nano=now_ns, as_double=aggregate.forecast), aggregate, None)


def _fill(point, aggregate: KeyAggregate, flag: int | None) -> None:
    """The key's attributes on ``point``, and the exemplars of records with ``flag`` (0: every flagged record)."""
    for key, value in aggregate.attributes:
        attribute = point.attributes.add()
        attribute.key = key
        attribute.value.string_value = value
    if flag is None:
        return
    for exemplar in aggregate.exemplars:
        if flag == 0 or exemplar.flags & flag:
            point.exemplars.add(
                time_unix_nano=exemplar.time_ns, as_double=exemplar.score, trace_id=exemplar.trace_id, span_id=exemplar.span_id
            )
