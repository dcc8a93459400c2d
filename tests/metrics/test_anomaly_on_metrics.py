"""The anomaly processor on metrics: a gauge spike, a counter's rate jump and a histogram's moving tail are flagged,
and the scores come out as gauges beside the scored metrics, never as attributes of their points."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from otelml import conventions
from otelml.component import Kind
from otelml.connectors.anomaly_metrics.config import AnomalyMetricsConfig
from otelml.connectors.anomaly_metrics.connector import AnomalyMetricsConnector
from otelml.pdata import Signal
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.processor import AnomalyProcessor
from tests.conftest import Collect
from tests.metrics.support import attributes_of, metrics_request, put, settings

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
START = 1_700_000_000 * 10**9
SECOND = 10**9


def processor(**config) -> AnomalyProcessor:
    return AnomalyProcessor(
        settings(Kind.PROCESSOR, "anomaly"), AnomalyConfig.model_validate({"warmup": 30, **config}), Signal.METRICS, Collect()
    )


def scores(batch) -> dict[str, list[tuple[dict, float]]]:
    """{otelml.* gauge name: [(point attributes, value), ...]} of a processed batch."""
    found: dict = {}
    for resource_metrics in batch.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name.startswith(conventions.PREFIX):
                    found.setdefault(metric.name, []).extend((attributes_of(p), p.as_double) for p in metric.gauge.data_points)
    return found


def gauge_batch(second: int, values: dict[str, float]):
    """One gauge point per CPU at ``second``."""
    request, metrics = metrics_request({"service.name": "host-1"})
    points = metrics.add(name="cpu.usage", unit="%").gauge.data_points
    for cpu, value in values.items():
        put(points.add(as_double=value, time_unix_nano=START + second * SECOND).attributes, {"cpu": cpu})
    return request


async def test_a_gauge_spike_is_flagged_on_its_series_only_and_scores_are_gauges_beside_it():
    scorer, noise = processor(), random.Random(1)
    for second in range(150):
        scorer.process(gauge_batch(second, {"0": 50 + noise.gauss(0, 2), "1": 30 + noise.gauss(0, 2)}))
    spike = gauge_batch(150, {"0": 98.0, "1": 30.5})
    scorer.process(spike)
    found = scores(spike)
    anomalies = {attributes["cpu"]: value for attributes, value in found[conventions.ANOMALY]}
    assert anomalies == {"0": 1.0, "1": 0.0}
    assert {tuple(sorted(attributes)) for name in found for attributes, _ in found[name]} == {("cpu", conventions.METRIC)}
    assert all(attributes[conventions.METRIC] == "cpu.usage" for attributes, _ in found[conventions.SCORE])
    assert {name for name in found} == {conventions.SCORE, conventions.FORECAST, conventions.ANOMALY}
    scored = spike.resource_metrics[0].scope_metrics[0].metrics[0]
    assert [sorted(attributes_of(point)) for point in scored.gauge.data_points] == [["cpu"], ["cpu"]]
    # The anomaly_metrics connector reads these gauges: one key per scored metric.
    out = Collect()
    connector = AnomalyMetricsConnector(
        settings(Kind.CONNECTOR, "anomaly_metrics"), AnomalyMetricsConfig(), {Signal.METRICS: out}
    )
    await connector.consume(spike)
    await connector.flush()
    (metric,) = [m for m in out.batches[0].resource_metrics[0].scope_metrics[0].metrics if m.name == "otelml.records.anomalies"]
    assert [(attributes_of(p)[conventions.KEY], p.as_int) for p in metric.sum.data_points] == [
        ("service.name=host-1 otelml.metric=cpu.usage", 1)
    ]


def counter_batch(second: int, total: float, start: int = START):
    request, metrics = metrics_request({"service.name": "shop"})
    counter = metrics.add(name="orders", unit="{order}")
    counter.sum.aggregation_temporality, counter.sum.is_monotonic = CUMULATIVE, True
    counter.sum.data_points.add(as_double=total, start_time_unix_nano=start, time_unix_nano=START + second * SECOND)
    return request


def test_a_counter_is_scored_on_its_rate_and_a_jump_in_it_is_flagged():
    scorer, noise, total = processor(), random.Random(2), 0.0
    first = counter_batch(0, total)
    scorer.process(first)
    assert scores(first) == {}  # a first point has no rate yet
    flagged = []
    for second in range(1, 150):
        total += 10 + noise.gauss(0, 1)
        batch = counter_batch(second, total)
        scorer.process(batch)
        flagged += [second for attributes, value in scores(batch)[conventions.ANOMALY] if value]
    assert flagged == []
    total += 200
    jump = counter_batch(150, total)
    scorer.process(jump)
    assert scores(jump)[conventions.ANOMALY] == [({conventions.METRIC: "orders"}, 1.0)]
    restarted = counter_batch(151, 5.0, start=START + 151 * SECOND)
    scorer.process(restarted)
    assert scores(restarted) == {}  # a restart has no rate until its next point


def histogram_batch(second: int, counts: list[int], totals: list[int], sums: float):
    """A cumulative latency histogram (bounds 10, 50, 100, 1000 ms) after adding ``counts``."""
    request, metrics = metrics_request({"service.name": "checkout"})
    histogram = metrics.add(name="request.duration", unit="ms")
    histogram.histogram.aggregation_temporality = CUMULATIVE
    for index, count in enumerate(counts):
        totals[index] += count
    histogram.histogram.data_points.add(
        start_time_unix_nano=START,
        time_unix_nano=START + second * SECOND,
        count=sum(totals),
        sum=sums,
        explicit_bounds=[10, 50, 100, 1000],
        bucket_counts=totals,
    )
    return request


def test_a_histogram_whose_upper_quantile_moves_is_flagged_on_that_quantile():
    scorer, noise = processor(), random.Random(3)
    totals, total_sum = [0] * 5, 0.0
    for second in range(150):
        counts = [700 + noise.randint(-20, 20), 290 + noise.randint(-10, 10), 10 + noise.randint(-2, 2), 0, 0]
        total_sum += counts[0] * 5 + counts[1] * 30 + counts[2] * 70
        scorer.process(histogram_batch(second, counts, totals, total_sum))
    counts = [690, 280, 10, 20, 0]  # 2% of the requests now take 100-1000 ms: the p99 moves far, the mean less
    total_sum += counts[0] * 5 + counts[1] * 30 + counts[2] * 70 + counts[3] * 300
    moved = histogram_batch(150, counts, totals, total_sum)
    scorer.process(moved)
    anomalies = {attributes[conventions.STATISTIC]: value for attributes, value in scores(moved)[conventions.ANOMALY]}
    assert anomalies["p99"] == 1.0
    assert set(anomalies) == {"mean", "p99"}
    assert any("statistic=p99" in key.key and key.score >= key.threshold for key in scorer.live_view(5).keys)


@pytest.mark.parametrize(
    "settings_, problem",
    [
        ({"key": ["resource.service.name", "span.name"]}, 'key::1: "span.name" does not exist in metrics'),
        ({"target": "duration"}, 'target: "duration" does not exist in metrics'),
        ({"target": "attributes.value"}, 'target: "attributes.value" does not exist in metrics'),
        ({"key": ["metric.name"], "target": "value"}, None),
    ],
)
def test_references_that_metrics_lack_are_config_errors_of_a_metrics_pipeline(settings_, problem):
    config = AnomalyConfig.model_validate(settings_)
    assert config.validate_signal(Signal.METRICS) == ([problem] if problem else [])
    if problem is None:
        assert config.validate_signal(Signal.TRACES) == [
            'key::0: "metric.name" does not exist in traces',
            'target: "value" does not exist in traces',
        ]
