"""The exporter's memory: the latest value of every series, ready to be scraped.

Each OTLP data point becomes (or updates) one :class:`Series`, identified
by the Prometheus name and labels it is served under. Cumulative points
replace what is held (older ones are ignored); delta monotonic sums and
delta histograms are added up into cumulative ones while each point
starts where the previous one ended, and start afresh otherwise, as the
collector-contrib exporter does. Series not updated for
``metric_expiration`` are forgotten.
"""

from __future__ import annotations

import dataclasses
import time

from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from prometheus_client.samples import Exemplar

from otelml.exporters.prometheus.config import SERVICE_ATTRIBUTES, PrometheusExporterConfig
from otelml.exporters.prometheus.translate import label_value, labels_of, metric_name
from otelml.pdata import point_value, scopes

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK


@dataclasses.dataclass
class Series:
    """One served series: its family, labels and latest value(s).

    ``value`` is a gauge's or counter's value; histograms have ``bounds``,
    ``counts`` (per bucket, not cumulative), ``count`` and ``total``;
    summaries ``quantiles``, ``count`` and ``total``.
    """

    name: str
    kind: str
    labels: dict[str, str]
    target: tuple[tuple[str, str], ...]  # the target_info labels of its resource
    start_ns: int
    time_ns: int
    updated: float
    value: float = 0.0
    bounds: tuple[float, ...] = ()
    counts: list[int] = dataclasses.field(default_factory=list)
    count: int = 0
    total: float = 0.0
    quantiles: tuple[tuple[float, float], ...] = ()
    exemplars: list[Exemplar] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Family:
    kind: str
    help: str


class Refused(Exception):
    """A data point that cannot be served; ``reason`` goes into the dropped-items metric."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class Accumulator:
    """Series by (name, labels), filled from whole OTLP metrics batches.

    Examples
    --------
    >>> from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    >>> request = ExportMetricsServiceRequest()
    >>> metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="queue.depth", unit="{item}")
    >>> _ = metric.gauge.data_points.add(as_int=7, time_unix_nano=1)
    >>> accumulator = Accumulator(PrometheusExporterConfig(endpoint="localhost:0"))
    >>> accumulator.add(request)
    (1, [])
    >>> [(s.name, s.kind, s.value) for s in accumulator.series.values()]
    [('queue_depth', 'gauge', 7.0)]
    """

    def __init__(self, config: PrometheusExporterConfig):
        self.config = config
        self.series: dict[tuple, Series] = {}
        self.families: dict[str, Family] = {}

    def add(self, batch, now: float | None = None) -> tuple[int, list[Refused]]:
        """Take every data point of ``batch``; returns how many were taken and why the rest were not."""
        now = time.monotonic() if now is None else now
        taken, refused = 0, []
        resource_entry = None
        resource: _ResourceLabels  # made at each resource entry's first scope
        for entry, scope_metrics, metrics in scopes(batch):
            if entry is not resource_entry:
                resource_entry, resource = entry, _ResourceLabels(entry.resource.attributes, self.config)
            scope = self._scope_labels(scope_metrics)
            for metric in metrics:
                try:
                    taken += self._add_metric(metric, resource, scope, now)
                except Refused as problem:
                    refused.append(problem)
        return taken, refused

    def expire(self, now: float | None = None) -> None:
        """Forget series (and then families) not updated within ``metric_expiration``."""
        oldest = (time.monotonic() if now is None else now) - self.config.metric_expiration
        self.series = {key: series for key, series in self.series.items() if series.updated >= oldest}
        alive = {series.name for series in self.series.values()}
        self.families = {name: family for name, family in self.families.items() if name in alive}

    def _scope_labels(self, scope_metrics) -> dict[str, str]:
        if self.config.without_scope_info:
            return {}
        scope = scope_metrics.scope
        labels = labels_of([_prefixed(kv) for kv in scope.attributes])
        for name, text in (
            ("otel_scope_name", scope.name),
            ("otel_scope_version", scope.version),
            ("otel_scope_schema_url", scope_metrics.schema_url),
        ):
            if text:
                labels[name] = text
        return labels

    def _add_metric(self, metric, resource: _ResourceLabels, scope: dict[str, str], now: float) -> int:
        data = metric.WhichOneof("data")
        if data is None:
            return 0
        body = getattr(metric, data)
        kind = _prometheus_kind(metric.name, data, body)
        name = metric_name(metric.name, metric.unit, kind, self.config.namespace, self.config.suffixes)
        family = self.families.setdefault(name, Family(kind, metric.description))
        if family.kind != kind:
            raise Refused("type conflict", f"{metric.name} ({kind}) is served as {name}, already a {family.kind}")
        for point in body.data_points:
            labels = labels_of(point.attributes)
            labels.update((key, value) for key, value in scope.items() if key not in labels)
            labels_of(resource.copied, labels)
            labels.update(resource.job_instance)
            key = (name, tuple(sorted(labels.items())))
            if point.flags & NO_RECORDED_VALUE:
                self.series.pop(key, None)
                continue
            held = self.series.get(key)
            series = Series(name, kind, labels, resource.target, point.start_time_unix_nano, point.time_unix_nano, now)
            if data == "histogram":
                self._histogram(series, point, held, body.aggregation_temporality == DELTA)
            elif data == "summary":
                series.count, series.total = point.count, point.sum
                series.quantiles = tuple((q.quantile, q.value) for q in point.quantile_values)
            else:
                series.value = point_value(point)
                series.exemplars = _exemplars(point.exemplars)[-1:]
                if (
                    data == "sum"
                    and body.aggregation_temporality == DELTA
                    and held
                    and held.time_ns == point.start_time_unix_nano
                ):
                    series.value += held.value
                    series.start_ns = held.start_ns
            if held is not None and series.time_ns < held.time_ns:
                continue  # only the newest point of a series is served
            if held is not None and not series.exemplars and held.start_ns == series.start_ns:
                # As client libraries do, an exemplar stays until a newer one replaces it: points
                # sent more often than Prometheus scrapes would otherwise hide most of them.
                series.exemplars = held.exemplars
            self.series[key] = series
        return len(body.data_points)

    @staticmethod
    def _histogram(series: Series, point, held: Series | None, delta: bool) -> None:
        series.bounds = tuple(point.explicit_bounds)
        series.counts = list(point.bucket_counts) or [point.count]
        series.count, series.total = point.count, point.sum
        series.exemplars = _exemplars(point.exemplars)
        if delta and held is not None and held.time_ns == point.start_time_unix_nano and held.bounds == series.bounds:
            series.counts = [a + b for a, b in zip(held.counts, series.counts)]
            series.count += held.count
            series.total += held.total
            series.start_ns = held.start_ns


def _prometheus_kind(name: str, data: str, body) -> str:
    """The Prometheus type a metric is served as; raises :class:`Refused` for what cannot be served."""
    if data == "gauge":
        return "gauge"
    if data == "summary":
        return "summary"
    if data == "exponential_histogram":
        raise Refused("exponential histogram", f"{name}: exponential histograms need native histograms, which are not served")
    temporality = body.aggregation_temporality
    if temporality not in (DELTA, CUMULATIVE):
        raise Refused("unspecified temporality", f"{name}: aggregation temporality unspecified")
    if data == "histogram":
        return "histogram"
    if temporality == DELTA and not body.is_monotonic:
        raise Refused("non-monotonic delta sum", f"{name}: a non-monotonic delta sum cannot be made cumulative")
    return "counter" if body.is_monotonic else "gauge"


def _prefixed(kv):
    """A scope attribute, renamed ``otel_scope_<key>`` as the exporter labels it."""
    copy = type(kv)()
    copy.CopyFrom(kv)
    copy.key = "otel_scope_" + kv.key
    return copy


def _exemplars(exemplars) -> list[Exemplar]:
    converted = []
    for exemplar in exemplars:
        labels = {}
        if exemplar.trace_id:
            labels["trace_id"] = exemplar.trace_id.hex()
        if exemplar.span_id:
            labels["span_id"] = exemplar.span_id.hex()
        converted.append(
            Exemplar(labels, point_value(exemplar), exemplar.time_unix_nano / 1e9 if exemplar.time_unix_nano else None)
        )
    return converted


class _ResourceLabels:
    """What one resource adds: job and instance, labels copied onto metrics, and its target_info labels."""

    def __init__(self, attributes, config: PrometheusExporterConfig):
        found = {kv.key: label_value(kv.value) for kv in attributes if kv.key in SERVICE_ATTRIBUTES}
        self.job_instance: dict[str, str] = {}
        if found.get("service.name"):
            namespace = found.get("service.namespace")
            self.job_instance["job"] = f"{namespace}/{found['service.name']}" if namespace else found["service.name"]
        if found.get("service.instance.id"):
            self.job_instance["instance"] = found["service.instance.id"]
        self.copied = [kv for kv in attributes if config.resource_label(kv.key)]
        others = [kv for kv in attributes if kv.key not in SERVICE_ATTRIBUTES]
        self.target = tuple(sorted({**labels_of(others), **self.job_instance}.items())) if len(attributes) else ()
