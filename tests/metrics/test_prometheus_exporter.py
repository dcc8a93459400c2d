"""The prometheus exporter: OTLP points in, the collector's Prometheus names, labels and values out."""

from __future__ import annotations

import aiohttp
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from otelml.component import Kind
from otelml.confmap import ConfigError
from otelml.exporters.prometheus.accumulator import Accumulator
from otelml.exporters.prometheus.config import PrometheusExporterConfig
from otelml.exporters.prometheus.exporter import PrometheusExporter
from otelml.exporters.prometheus.exposition import SeriesCollector
from otelml.exporters.prometheus.translate import metric_name
from otelml.telemetry import Telemetry
from tests.conftest import build_config, parse_metrics
from tests.metrics.support import metrics_request, put, settings

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
SHOP = {"service.name": "checkout", "service.namespace": "shop", "service.instance.id": "pod-1", "host.name": "node-7"}


def served(accumulator: Accumulator) -> dict:
    """The text exposition of ``accumulator``, parsed to {(sample, labels): value}."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SeriesCollector(accumulator, accumulator.config))
    return parse_metrics(generate_latest(registry).decode())


def accumulator(**settings) -> Accumulator:
    return Accumulator(PrometheusExporterConfig(endpoint="localhost:0", **settings))


@pytest.mark.parametrize(
    "name, unit, kind, expected",
    [
        ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
        ("system.memory.usage", "By", "gauge", "system_memory_usage_bytes"),
        ("network.io", "By/s", "counter", "network_io_bytes_per_second"),
        ("requests.total", "{request}", "counter", "requests"),
        ("queue.utilization", "1", "gauge", "queue_utilization_ratio"),
        ("temperature", "Cel", "gauge", "temperature_celsius"),
        ("latency_seconds", "s", "histogram", "latency_seconds"),
        ("2xx.responses", "", "counter", "_2xx_responses"),
        ("foo--bar", "", "gauge", "foo_bar"),
    ],
)
def test_names_follow_the_collectors_translation(name, unit, kind, expected):
    assert metric_name(name, unit, kind) == expected


def test_every_metric_type_is_served_with_job_instance_and_target_info():
    request, metrics = metrics_request(SHOP, scope="shop.meter")
    gauge = metrics.add(name="queue.depth", unit="{item}")
    put(gauge.gauge.data_points.add(as_int=7, time_unix_nano=5).attributes, {"queue": "orders"})
    counter = metrics.add(name="requests", unit="1")
    counter.sum.aggregation_temporality, counter.sum.is_monotonic = CUMULATIVE, True
    counter.sum.data_points.add(as_double=41.0, start_time_unix_nano=1, time_unix_nano=5)
    updown = metrics.add(name="connections", unit="{connection}")
    updown.sum.aggregation_temporality = CUMULATIVE
    updown.sum.data_points.add(as_int=-3, time_unix_nano=5)
    histogram = metrics.add(name="request.duration", unit="ms")
    histogram.histogram.aggregation_temporality = CUMULATIVE
    histogram.histogram.data_points.add(count=6, sum=300.0, explicit_bounds=[10, 100], bucket_counts=[1, 3, 2], time_unix_nano=5)
    summary = metrics.add(name="gc.pause", unit="s")
    point = summary.summary.data_points.add(count=4, sum=2.0, time_unix_nano=5)
    point.quantile_values.add(quantile=0.99, value=0.9)
    store = accumulator()
    assert store.add(request) == (5, [])
    samples = served(store)
    common = {"job": "shop/checkout", "instance": "pod-1", "otel_scope_name": "shop.meter"}

    def value(name, **labels):
        return samples[(name, frozenset({**common, **labels}.items()))]

    assert value("queue_depth", queue="orders") == 7
    assert value("requests_total") == 41
    assert value("connections") == -3
    assert [value("request_duration_milliseconds_bucket", le=le) for le in ("10.0", "100.0", "+Inf")] == [1, 4, 6]
    assert value("request_duration_milliseconds_count") == 6 and value("request_duration_milliseconds_sum") == 300
    assert value("gc_pause_seconds", quantile="0.99") == 0.9 and value("gc_pause_seconds_count") == 4
    assert samples[("target_info", frozenset({"job": "shop/checkout", "instance": "pod-1", "host_name": "node-7"}.items()))] == 1


def delta_sum(value: int, start: int, end: int):
    request, metrics = metrics_request()
    metric = metrics.add(name="orders")
    metric.sum.aggregation_temporality, metric.sum.is_monotonic = DELTA, True
    metric.sum.data_points.add(as_int=value, start_time_unix_nano=start, time_unix_nano=end)
    return request


def test_delta_sums_add_up_while_contiguous_and_start_afresh_after_a_gap():
    store = accumulator()
    for value, start, end in ((5, 0, 10), (3, 10, 20), (4, 20, 30)):
        store.add(delta_sum(value, start, end))
    assert served(store)[("orders_total", frozenset({"job": "checkout", "otel_scope_name": "test"}.items()))] == 12
    store.add(delta_sum(2, 40, 50))  # 30 -> 40 is missing: a restart of the counter
    assert served(store)[("orders_total", frozenset({"job": "checkout", "otel_scope_name": "test"}.items()))] == 2


def test_delta_histograms_add_up_bucket_by_bucket():
    store = accumulator()
    for start, counts in ((0, [1, 0]), (10, [2, 3])):
        request, metrics = metrics_request()
        metric = metrics.add(name="size", unit="By")
        metric.histogram.aggregation_temporality = DELTA
        metric.histogram.data_points.add(
            count=sum(counts),
            sum=10.0 * sum(counts),
            explicit_bounds=[1.0],
            bucket_counts=counts,
            start_time_unix_nano=start,
            time_unix_nano=start + 10,
        )
        store.add(request)
    samples = served(store)
    labels = {"job": "checkout", "otel_scope_name": "test"}
    assert samples[("size_bytes_bucket", frozenset({**labels, "le": "1.0"}.items()))] == 3
    assert samples[("size_bytes_count", frozenset(labels.items()))] == 6


def test_points_that_cannot_be_served_are_counted_and_the_rest_is_served():
    request, metrics = metrics_request()
    updown = metrics.add(name="delta.updown")
    updown.sum.aggregation_temporality = DELTA
    updown.sum.data_points.add(as_int=1)
    metrics.add(name="exp").exponential_histogram.data_points.add(count=1)
    metrics.add(name="fine").gauge.data_points.add(as_int=1)
    metrics.add(name="fine", unit="By").gauge.data_points.add(as_int=2)  # fine_bytes: no conflict
    conflicting = metrics.add(name="fine")
    conflicting.sum.aggregation_temporality, conflicting.sum.is_monotonic = CUMULATIVE, True
    conflicting.sum.data_points.add(as_int=3)  # fine as a counter: conflict
    store = accumulator()
    taken, refused = store.add(request)
    assert taken == 2
    assert sorted(problem.reason for problem in refused) == ["exponential histogram", "non-monotonic delta sum", "type conflict"]
    assert {name for name, _ in served(store)} == {"fine", "fine_bytes", "target_info"}


def test_series_expire_after_metric_expiration_and_no_recorded_value_removes_one():
    store = accumulator(metric_expiration="5m")
    request, metrics = metrics_request()
    metrics.add(name="old").gauge.data_points.add(as_int=1)
    store.add(request, now=0.0)
    request, metrics = metrics_request()
    points = metrics.add(name="new").gauge.data_points
    put(points.add(as_int=1).attributes, {"id": "kept"})
    put(points.add(as_int=1).attributes, {"id": "gone"})
    store.add(request, now=200.0)
    request, metrics = metrics_request()
    put(metrics.add(name="new").gauge.data_points.add(flags=1).attributes, {"id": "gone"})
    store.add(request, now=250.0)
    store.expire(now=301.0)
    assert [(series.name, series.labels.get("id")) for series in store.series.values()] == [("new", "kept")]


def test_namespace_const_labels_timestamps_and_resource_labels():
    store = accumulator(
        namespace="shop",
        const_labels={"region": "eu"},
        send_timestamps=True,
        resource_to_telemetry_conversion={"enabled": True, "exclude_service_attributes": True},
        without_scope_info=True,
        add_metric_suffixes=False,
    )
    request, metrics = metrics_request(SHOP)
    metrics.add(name="cart.size", unit="{item}").gauge.data_points.add(as_int=3, time_unix_nano=1_500_000_000_000_000_000)
    store.add(request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SeriesCollector(store, store.config))
    text = generate_latest(registry).decode()
    assert 'shop_cart_size{host_name="node-7",instance="pod-1",job="shop/checkout",region="eu"} 3.0 1500000000000' in text
    assert "shop_target_info{" in text


def test_resource_constant_labels_choose_attributes_by_pattern():
    store = accumulator(resource_constant_labels={"included": ["host.*", "service.*"], "excluded": ["service.instance.id"]})
    request, metrics = metrics_request(SHOP)
    metrics.add(name="up").gauge.data_points.add(as_int=1)
    store.add(request)
    (series,) = store.series.values()
    assert {key: series.labels[key] for key in ("host_name", "service_name", "service_namespace")} == {
        "host_name": "node-7",
        "service_name": "checkout",
        "service_namespace": "shop",
    }
    assert "service_instance_id" not in series.labels


def prometheus_pipeline(settings: dict) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "exporters": {"prometheus": settings},
        "service": {"pipelines": {"metrics": {"receivers": ["otlp"], "exporters": ["prometheus"]}}},
    }


@pytest.mark.parametrize(
    "settings, expected",
    [
        (
            {"endpoint": "nowhere", "sending_queue": {"enabled": True}},
            [
                "exporters::prometheus::endpoint: invalid endpoint 'nowhere': expected host:port",
                "exporters::prometheus::sending_queue: the exporter is scraped, so nothing is queued: remove it",
            ],
        ),
        (
            {"endpoint": "localhost:9464", "translation_strategy": "NoTranslation", "metric_expiration": "0s"},
            [
                "exporters::prometheus::metric_expiration: must be positive",
                "exporters::prometheus::translation_strategy: NoTranslation is not supported (it needs UTF-8 metric names; "
                "use UnderscoreEscapingWithSuffixes or UnderscoreEscapingWithoutSuffixes)",
            ],
        ),
    ],
)
def test_config_errors_name_every_problem_with_its_path(settings, expected):
    with pytest.raises(ConfigError) as raised:
        build_config(prometheus_pipeline(settings))
    assert set(expected) <= set(raised.value.problems), raised.value.problems


def exemplar_request():
    request, metrics = metrics_request()
    histogram = metrics.add(name="latency", unit="ms")
    histogram.histogram.aggregation_temporality = CUMULATIVE
    point = histogram.histogram.data_points.add(
        count=2, sum=520.0, explicit_bounds=[100.0], bucket_counts=[1, 1], time_unix_nano=5
    )
    point.exemplars.add(as_double=500.0, trace_id=bytes(range(16)), span_id=bytes(range(8)), time_unix_nano=5)
    return request


@pytest.mark.parametrize("open_metrics", [True, False])
async def test_scrape_endpoint_negotiates_openmetrics_with_exemplars_only_when_enabled(open_metrics):
    telemetry = Telemetry()
    config = PrometheusExporterConfig(endpoint="127.0.0.1:0", enable_open_metrics=open_metrics)
    exporter = PrometheusExporter(settings(Kind.EXPORTER, "prometheus", telemetry=telemetry), config)
    await exporter.start(None)
    try:
        await exporter.consume(exemplar_request())
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"{exporter.server.url}/metrics",
                headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
            ) as response:
                assert response.status == 200
                content_type, body = response.headers["Content-Type"], await response.text()
    finally:
        await exporter.shutdown()
    assert content_type.startswith("application/openmetrics-text" if open_metrics else "text/plain")
    assert telemetry.value("otelcol_exporter_sent_metric_points_total", exporter="prometheus") == 1
    if not open_metrics:
        assert "trace_id" not in body
        return
    (bucket,) = [
        sample
        for family in openmetrics_families(body)
        for sample in family.samples
        if sample.name == "latency_milliseconds_bucket" and sample.labels["le"] == "+Inf"
    ]
    assert bucket.exemplar.labels == {"trace_id": bytes(range(16)).hex(), "span_id": bytes(range(8)).hex()}
    assert bucket.exemplar.value == 500.0


def test_an_exemplar_stays_until_a_newer_one_replaces_it():
    store = accumulator()
    store.add(exemplar_request())
    request = exemplar_request()
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
    del point.exemplars[:]
    point.time_unix_nano, point.count, point.bucket_counts[0] = 6, 3, 2
    store.add(request)
    (series,) = store.series.values()
    assert (series.count, [e.labels["trace_id"] for e in series.exemplars]) == (3, [bytes(range(16)).hex()])
