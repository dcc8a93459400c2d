"""Reading metric data points as the records the engine scores.

A metric's records are its data points, keyed by references as spans are
(default: ``resource.service.name``, ``metric.name`` and ``attributes``, all
of a point's attributes, i.e. its series). What is scored depends on the
metric's type:

- a gauge, a delta sum or a non-monotonic sum: the point's value;
- a monotonic cumulative sum: its rate, the increase since the series' previous
  point per second (a counter restart starts it afresh);
- a histogram: two records, its mean and a quantile estimated from its buckets
  (``otelml.statistic`` ``mean`` and e.g. ``p99``), each a key of its own; a
  cumulative histogram is scored on what arrived since its previous point.

What a cumulative series needs of its previous point is kept per key in the
key store (:data:`FIELDS`), so it is checkpointed and evicted with the key.
Summaries, exponential histograms and the ``otelml.*`` metrics the processor
writes itself are not scored.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, HistogramDataPoint, NumberDataPoint, ScopeMetrics

from otelml import conventions
from otelml.pdata import Batch, Signal, data_points, point_value, record_time, scopes
from otelml.processors.anomaly.extract import Columns, _seconds
from otelml.processors.anomaly.store import Field
from otelml.references import Reference, any_value_number, any_value_text, check_signal, find_attributes

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
FIELDS = {"metric.previous": Field((), object, None)}


@dataclasses.dataclass(frozen=True)
class ScoredPoint:
    """One record of a metric: a data point, where it is, and what of it is scored.

    ``statistic`` is empty for gauges and sums; ``cumulative`` says the value
    is scored on its change since the series' previous point.
    """

    point: NumberDataPoint | HistogramDataPoint
    scope: ScopeMetrics
    metric: str
    statistic: str = ""
    cumulative: bool = False


def quantile(bounds, counts, q: float) -> float:
    """The ``q`` quantile of a histogram, interpolated within its bucket as Prometheus' ``histogram_quantile``.

    Counts beyond the last bound give the last bound; NaN for an empty histogram.

    >>> quantile([10.0, 20.0, 50.0], [2, 6, 2, 0], 0.5)
    15.0
    >>> quantile([10.0], [0, 3], 0.9), quantile([1.0], [0, 0], 0.5)
    (10.0, nan)
    """
    total = sum(counts)
    if total <= 0:
        return float("nan")
    rank, below = q * total, 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            if index >= len(bounds):
                return float(bounds[-1]) if len(bounds) else float("nan")
            lower = bounds[index - 1] if index else min(0.0, bounds[0])
            return float(lower + (bounds[index] - lower) * (rank - below) / count)
        below += count
    return float(bounds[-1]) if len(bounds) else float("nan")


class MetricReader:
    """Extracts key, value and time of every scorable data point of a metrics batch.

    Parameters
    ----------
    key
        References that identify a series, in config order.
    target
        What is scored: ``value`` is the only target of a data point.
    histogram_quantile
        The quantile a histogram is scored on besides its mean.
    need_errors, feature_attributes
        As for :class:`~otelml.processors.anomaly.extract.BatchReader` (a data point has no error flag).

    Examples
    --------
    >>> from otelml.references import parse_key, parse_target
    >>> request = Signal.METRICS.request_type()
    >>> metrics = request.resource_metrics.add().scope_metrics.add().metrics
    >>> gauge = metrics.add(name="queue.depth").gauge.data_points
    >>> _ = gauge.add(as_int=7, time_unix_nano=10**18), gauge.add(as_int=9, time_unix_nano=2 * 10**18)
    >>> reader = MetricReader([parse_key("metric.name")], parse_target("value"), 0.99)
    >>> columns = reader.read(request)
    >>> columns.keys, columns.actual.tolist(), columns.times.tolist()
    ([('queue.depth',)], [7.0, 9.0], [1000000000.0, 2000000000.0])
    """

    def __init__(
        self,
        key: list[Reference],
        target: Reference,
        histogram_quantile: float,
        need_errors: bool = False,
        feature_attributes: tuple[str, ...] = (),
    ):
        for reference in [*key, target]:
            check_signal(reference, Signal.METRICS)
        self.key = key
        self.histogram_quantile = histogram_quantile
        self.statistics = ("mean", f"p{100 * histogram_quantile:g}")
        self.need_errors = need_errors
        self.feature_attributes = tuple(feature_attributes)
        self.point_attributes = frozenset(
            [r.attribute for r in key if r.level == "record" and r.attribute] + list(self.feature_attributes)
        )
        self.resource_attributes = frozenset(r.attribute for r in key if r.level == "resource")

    def describe(self, key: tuple) -> str:
        """``service.name=host-1 metric.name=cpu.usage attributes=cpu=0,state=user`` (and ``statistic=p99``)."""
        parts = [f"{ref.label}={value}" for ref, value in zip(self.key, key)]
        if len(key) > len(self.key):
            parts.append(f"statistic={key[-1]}")
        return " ".join(parts)

    def read(self, batch: Batch) -> Columns:
        records: list[ScoredPoint] = []
        parts: list[tuple] = []
        actual: list[float] = []
        nanos: list[int] = []
        errors: list[bool] = []
        attributes: list[dict] = []
        skipped = 0
        resource_entry, resource = None, {}
        for entry, scope_metrics, metrics in scopes(batch):
            if entry is not resource_entry:
                resource_entry, resource = entry, find_attributes(entry.resource.attributes, self.resource_attributes)
            for metric in metrics:
                data = metric.WhichOneof("data")
                if metric.name.startswith(conventions.PREFIX):
                    continue  # the processor's own scores
                if data not in ("gauge", "sum", "histogram"):
                    skipped += len(data_points(metric))
                    continue
                body = getattr(metric, data)
                cumulative = (
                    data != "gauge" and body.aggregation_temporality == CUMULATIVE and (data == "histogram" or body.is_monotonic)
                )
                for point in body.data_points:
                    found = find_attributes(point.attributes, self.point_attributes) if self.point_attributes else {}
                    key = tuple(self._part(r, resource, scope_metrics.scope, metric.name, point, found) for r in self.key)
                    if data == "histogram":
                        values = [np.nan, np.nan] if cumulative else _histogram_values(point, self.histogram_quantile)
                        made = [
                            (key + (statistic,), ScoredPoint(point, scope_metrics, metric.name, statistic, cumulative), value)
                            for statistic, value in zip(self.statistics, values)
                        ]
                    else:
                        value = np.nan if cumulative else point_value(point)
                        made = [(key, ScoredPoint(point, scope_metrics, metric.name, "", cumulative), value)]
                    when = record_time(point, Signal.METRICS)
                    for record_key, record, value in made:
                        parts.append(record_key)
                        records.append(record)
                        actual.append(value)
                        nanos.append(when)
                        if self.need_errors:
                            errors.append(False)
                        if self.feature_attributes:
                            attributes.append(
                                {name: any_value_number(found[name]) for name in self.feature_attributes if name in found}
                            )
        keys: dict[tuple, int] = {}
        key_ids = np.fromiter((keys.setdefault(part, len(keys)) for part in parts), dtype=np.intp, count=len(parts))
        columns = Columns(
            records, list(keys), key_ids, np.asarray(actual, dtype=float), _seconds(nanos), errors, attributes, skipped
        )
        # Values that are not finite (a NaN gauge, an empty histogram) are no readings.
        unreadable = ~np.isfinite(columns.actual) & np.array([not r.cumulative for r in records], dtype=bool)
        return columns.subset(np.flatnonzero(~unreadable)) if unreadable.any() else columns

    @staticmethod
    def _part(reference: Reference, resource: dict, scope, metric_name: str, point, found: dict) -> str:
        if reference.level == "resource":
            return any_value_text(resource[reference.attribute]) if reference.attribute in resource else ""
        if reference.level == "scope":
            return scope.name if reference.field == "scope.name" else scope.version
        if reference.attribute:
            return reference.attribute_text(found)
        if reference.field == "metric.name":
            return metric_name
        return ",".join(f"{kv.key}={any_value_text(kv.value)}" for kv in sorted(point.attributes, key=lambda kv: kv.key))

    def resolve(self, columns: Columns, slots: np.ndarray, arrays: dict) -> Columns:
        """Values of the cumulative records from each series' previous point (kept per key); those without one drop out."""
        cumulative = [index for index, record in enumerate(columns.records) if record.cumulative]
        if not cumulative:
            return columns
        previous = arrays["metric.previous"]
        for index in cumulative:
            record, slot = columns.records[index], slots[columns.key_ids[index]]
            columns.actual[index], previous[slot] = _change(record, previous[slot], self.histogram_quantile)
        kept = np.flatnonzero(np.isfinite(columns.actual))
        return columns if len(kept) == len(columns.records) else columns.subset(kept)


def _histogram_values(point, q: float, count=None, total=None, buckets=None) -> list[float]:
    """The mean and the ``q`` quantile of a histogram point (or of the given count, sum and bucket counts)."""
    count = point.count if count is None else count
    total = point.sum if total is None else total
    buckets = list(point.bucket_counts) if buckets is None else buckets
    mean = total / count if count else float("nan")
    return [mean, quantile(list(point.explicit_bounds), buckets, q)]


def _change(record: ScoredPoint, previous, q: float) -> tuple[float, tuple]:
    """A cumulative point's value from its series' previous point, and what to keep for the next one.

    A sum gives its rate per second; a histogram the mean or quantile of what
    arrived since. Without a previous point of the same run (a first point, a
    restart, an older point) there is no value: NaN.
    """
    point = record.point
    start, now = point.start_time_unix_nano, point.time_unix_nano
    current = (
        (start, now, point.count, point.sum, tuple(point.bucket_counts))
        if isinstance(point, HistogramDataPoint)
        else (start, now, point_value(point))
    )
    if previous is None or previous[0] != start or now <= previous[1]:
        return float("nan"), current if previous is None or now > previous[1] else previous
    if not isinstance(point, HistogramDataPoint):
        increase = current[2] - previous[2]
        return (increase / ((now - previous[1]) / 1e9) if increase >= 0 else float("nan")), current
    count = point.count - previous[2]
    if count <= 0:
        return float("nan"), current
    buckets = list(point.bucket_counts)
    if len(buckets) == len(previous[4]):
        buckets = [a - b for a, b in zip(buckets, previous[4])]
    mean, upper = _histogram_values(point, q, count, point.sum - previous[3], buckets)
    return (mean if record.statistic == "mean" else upper), current
