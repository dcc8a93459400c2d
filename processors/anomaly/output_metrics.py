"""Scores of metric data points, written as gauges beside the scored metrics.

A metric's attributes define its series, so a score written onto its data
points would split every series in every backend. Instead, each scope that
has scored points gets three gauges, ``otelml.score``, ``otelml.forecast``
and ``otelml.anomaly`` (0 or 1), with one point per scored point: the scored
point's attributes plus ``otelml.metric`` (the scored metric's name) and,
for histograms, ``otelml.statistic``, at the scored point's time.
"""

from __future__ import annotations

import numpy as np

from otelml import conventions
from otelml.processors.anomaly.extract_metrics import ScoredPoint

GAUGES = (
    (conventions.SCORE, "Anomaly score of the series named by otelml.metric, in [0, 1]."),
    (conventions.FORECAST, "The trend of that score at the forecast horizon."),
    (conventions.ANOMALY, "1 when that score reached the threshold (after warmup), else 0."),
)


def write_scores(records: list[ScoredPoint], score: np.ndarray, forecast: np.ndarray, anomaly: np.ndarray) -> None:
    """Add the score gauges of ``records`` (in batch order) to the scopes their metrics are in.

    Examples
    --------
    >>> from opentelemetry.proto.metrics.v1.metrics_pb2 import ScopeMetrics
    >>> scope = ScopeMetrics()
    >>> point = scope.metrics.add(name="cpu.usage").gauge.data_points.add(as_double=97.0, time_unix_nano=5)
    >>> point.attributes.add(key="cpu").value.string_value = "0"
    >>> write_scores([ScoredPoint(point, scope, "cpu.usage")], np.array([0.8]), np.array([0.3]), np.array([True]))
    >>> [(m.name, m.gauge.data_points[0].as_double) for m in scope.metrics[1:]]
    [('otelml.score', 0.8), ('otelml.forecast', 0.3), ('otelml.anomaly', 1.0)]
    >>> [(kv.key, kv.value.string_value) for kv in scope.metrics[1].gauge.data_points[0].attributes]
    [('cpu', '0'), ('otelml.metric', 'cpu.usage')]
    """
    gauges: dict[int, list] = {}
    columns = (score.tolist(), forecast.tolist(), anomaly.astype(float).tolist())
    for index, record in enumerate(records):
        scope_gauges = gauges.get(id(record.scope))
        if scope_gauges is None:
            scope_gauges = gauges[id(record.scope)] = [
                record.scope.metrics.add(name=name, unit="", description=text).gauge.data_points for name, text in GAUGES
            ]
        for points, values in zip(scope_gauges, columns):
            point = points.add(time_unix_nano=record.point.time_unix_nano, as_double=values[index])
            point.attributes.extend(record.point.attributes)
            point.attributes.add(key=conventions.METRIC).value.string_value = record.metric
            if record.statistic:
                point.attributes.add(key=conventions.STATISTIC).value.string_value = record.statistic
