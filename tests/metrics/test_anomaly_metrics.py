"""The anomaly_metrics connector: scored records in, per-key histograms, counters and gauges out."""

from __future__ import annotations

import pytest

from otelml import conventions
from otelml.component import Kind
from otelml.confmap import ConfigError
from otelml.connectors.anomaly_metrics.config import AnomalyMetricsConfig
from otelml.connectors.anomaly_metrics.connector import AnomalyMetricsConnector
from otelml.pdata import Signal
from otelml.telemetry import Telemetry
from tests.conftest import Collect, build_config
from tests.metrics.support import attributes_of, metrics_request, put, scored_spans, settings


def connector(telemetry: Telemetry | None = None, **config) -> tuple[AnomalyMetricsConnector, Collect]:
    out = Collect()
    made = AnomalyMetricsConnector(
        settings(Kind.CONNECTOR, "anomaly_metrics", telemetry=telemetry),
        AnomalyMetricsConfig.model_validate(config),
        {Signal.METRICS: out},
    )
    return made, out


def by_name(batch) -> dict:
    """{metric name: {otelml.key: data point}} over the whole batch."""
    found: dict = {}
    for resource_metrics in batch.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == conventions.METRICS_SCOPE
            for metric in scope_metrics.metrics:
                points = getattr(metric, metric.WhichOneof("data")).data_points
                found.setdefault(metric.name, {}).update({attributes_of(p)[conventions.KEY]: p for p in points})
    return found


CART = "service.name=checkout span.name=GET /cart"
PAY = "service.name=checkout span.name=POST /pay"


async def test_each_key_gets_a_score_histogram_counters_and_its_latest_forecast():
    made, out = connector(histogram={"explicit": {"buckets": [0.5, 0.9]}})
    await made.consume(
        scored_spans(
            "checkout",
            [
                {"name": "GET /cart", "score": 0.2, "forecast": 0.1},
                {"name": "GET /cart", "score": 0.95, "anomaly": True, "open": True, "forecast": 0.4},
                {"name": "POST /pay", "score": 0.6, "predicted": True, "forecast": 0.7},
            ],
        )
    )
    await made.flush()
    (batch,) = out.batches
    assert [kv.value.string_value for kv in batch.resource_metrics[0].resource.attributes] == ["checkout"]
    metrics = by_name(batch)
    cart, pay = metrics["otelml.records.score"][CART], metrics["otelml.records.score"][PAY]
    assert (list(cart.bucket_counts), cart.count, round(cart.sum, 6)) == ([1, 0, 1], 2, 1.15)
    assert list(pay.bucket_counts) == [0, 1, 0]
    assert attributes_of(cart) == {"service.name": "checkout", "span.name": "GET /cart", conventions.KEY: CART}
    assert {key: p.as_int for key, p in metrics["otelml.records.anomalies"].items()} == {CART: 1, PAY: 0}
    assert {key: p.as_int for key, p in metrics["otelml.records.incidents"].items()} == {CART: 1, PAY: 0}
    assert {key: p.as_int for key, p in metrics["otelml.records.incidents.predicted"].items()} == {CART: 0, PAY: 1}
    assert {key: p.as_double for key, p in metrics["otelml.records.forecast"].items()} == {CART: 0.4, PAY: 0.7}


async def test_exemplars_carry_the_trace_and_span_of_flagged_records_only():
    made, out = connector()
    flagged = bytes.fromhex("ab" * 16)
    await made.consume(
        scored_spans(
            "checkout",
            [
                {"name": "GET /cart", "score": 0.1},
                {"name": "GET /cart", "score": 0.9, "anomaly": True, "trace_id": flagged},
            ],
        )
    )
    await made.flush()
    metrics = by_name(out.batches[0])
    (exemplar,) = metrics["otelml.records.score"][CART].exemplars
    assert (exemplar.trace_id, exemplar.span_id, exemplar.as_double) == (flagged, (2).to_bytes(8, "big"), 0.9)
    assert [e.trace_id for e in metrics["otelml.records.anomalies"][CART].exemplars] == [flagged]
    assert not metrics["otelml.records.incidents"][CART].exemplars
    await made.flush()
    assert not by_name(out.batches[1])["otelml.records.score"][CART].exemplars


async def test_cumulative_totals_grow_and_delta_sends_each_interval_once():
    cumulative, cumulative_out = connector()
    delta, delta_out = connector(aggregation_temporality="AGGREGATION_TEMPORALITY_DELTA")
    for made in (cumulative, delta):
        await made.consume(scored_spans("checkout", [{"name": "GET /cart", "score": 0.9, "anomaly": True}]))
        await made.flush()
        await made.consume(scored_spans("checkout", [{"name": "POST /pay", "score": 0.9, "anomaly": True}]))
        await made.flush()
    anomalies = [{k: p.as_int for k, p in by_name(b)["otelml.records.anomalies"].items()} for b in cumulative_out.batches]
    assert anomalies == [{CART: 1}, {CART: 1, PAY: 1}]
    anomalies = [{k: p.as_int for k, p in by_name(b)["otelml.records.anomalies"].items()} for b in delta_out.batches]
    assert anomalies == [{CART: 1}, {PAY: 1}]
    first, second = (by_name(b)["otelml.records.score"] for b in cumulative_out.batches)
    assert second[CART].start_time_unix_nano == first[CART].start_time_unix_nano < second[CART].time_unix_nano


async def test_keys_beyond_max_keys_share_an_overflow_series_and_are_counted():
    telemetry = Telemetry()
    made, out = connector(telemetry=telemetry, max_keys=1)
    await made.consume(
        scored_spans(
            "checkout",
            [
                {"name": "GET /cart", "score": 0.1},
                {"name": "POST /pay", "score": 0.2},
                {"name": "GET /", "score": 0.3},
            ],
        )
    )
    await made.flush()
    scores = by_name(out.batches[0])["otelml.records.score"]
    assert {key: p.count for key, p in scores.items()} == {CART: 1, conventions.OVERFLOW_KEY: 2}
    assert attributes_of(scores[conventions.OVERFLOW_KEY]) == {conventions.KEY: conventions.OVERFLOW_KEY}
    assert telemetry.value("otelml_anomaly_metrics_overflow_records_total", connector="anomaly_metrics") == 2
    assert telemetry.value("otelml_anomaly_metrics_keys", connector="anomaly_metrics") == 1


async def test_keys_not_seen_within_metrics_expiration_are_dropped_and_free_their_place():
    made, out = connector(max_keys=1, metrics_expiration="1m")
    await made.consume(scored_spans("checkout", [{"name": "GET /cart", "score": 0.1}]))
    made.aggregator.expire(oldest=float("inf"))
    await made.consume(scored_spans("checkout", [{"name": "POST /pay", "score": 0.2}]))
    await made.flush()
    assert list(by_name(out.batches[0])["otelml.records.score"]) == [PAY]


async def test_unscored_records_are_not_counted_and_dimensions_are_configurable():
    made, out = connector(dimensions=["resource.service.name", "attributes.http.route"], namespace="scores")
    request = scored_spans("checkout", [{"name": "GET /cart/1", "score": 0.4}])
    put(request.resource_spans[0].scope_spans[0].spans[0].attributes, {"http.route": "/cart/{id}"})
    request.resource_spans[0].scope_spans[0].spans.add(name="not scored")
    await made.consume(request)
    await made.flush()
    (point,) = by_name(out.batches[0])["scores.score"].values()
    assert attributes_of(point) == {
        "service.name": "checkout",
        "http.route": "/cart/{id}",
        conventions.KEY: "service.name=checkout http.route=/cart/{id}",
    }
    assert point.count == 1


async def test_scored_metric_gauges_are_aggregated_per_scored_metric():
    made, out = connector()
    request, metrics = metrics_request()
    for name, value in ((conventions.SCORE, 0.8), (conventions.ANOMALY, 1), (conventions.FORECAST, 0.3)):
        put(metrics.add(name=name).gauge.data_points.add(as_double=float(value)).attributes, {conventions.METRIC: "cpu.usage"})
    metrics.add(name="cpu.usage").gauge.data_points.add(as_double=97.0)
    await made.consume(request)
    await made.flush()
    metrics = by_name(out.batches[0])
    key = "service.name=checkout otelml.metric=cpu.usage"
    assert metrics["otelml.records.score"][key].count == 1
    assert metrics["otelml.records.anomalies"][key].as_int == 1
    assert metrics["otelml.records.forecast"][key].as_double == 0.3


async def test_shutdown_sends_what_was_aggregated():
    made, out = connector(metrics_flush_interval="1h")
    await made.start(None)
    await made.consume(scored_spans("checkout", [{"name": "GET /cart", "score": 0.9}]))
    await made.shutdown()
    assert by_name(out.batches[0])["otelml.records.score"][CART].count == 1


def pipelines(signal: str, dimensions: list[str], buckets: list[float]) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "connectors": {"anomaly_metrics": {"dimensions": dimensions, "histogram": {"explicit": {"buckets": buckets}}}},
        "exporters": {"debug": {}},
        "service": {
            "pipelines": {
                signal: {"receivers": ["otlp"], "exporters": ["anomaly_metrics"]},
                "metrics": {"receivers": ["anomaly_metrics"], "exporters": ["debug"]},
            }
        },
    }


def test_config_errors_name_every_problem_with_its_path():
    with pytest.raises(ConfigError) as raised:
        build_config(pipelines("traces", ["span.nam", "resource.service.name"], [0.5, 0.5]))
    problems = raised.value.problems
    assert any(
        p.startswith('connectors::anomaly_metrics::dimensions::0: unknown reference "span.nam" (use resource.<attribute>')
        for p in problems
    ), problems
    assert "connectors::anomaly_metrics::histogram::explicit::buckets: must be a non-empty, strictly increasing list" in problems


@pytest.mark.parametrize("signal", [Signal.LOGS, Signal.METRICS])
def test_a_dimension_the_signal_lacks_is_a_problem_of_that_signal(signal):
    config = AnomalyMetricsConfig(dimensions=["resource.service.name", "span.name"])
    assert config.validate_signal(Signal.TRACES) == []
    assert config.validate_signal(signal) == [f'dimensions::1: "span.name" does not exist in {signal.value}']
