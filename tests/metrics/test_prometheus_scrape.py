"""A real Prometheus scrapes otelml's prometheus exporter: per-key score histograms, the spiking key's anomalies, exemplars."""

from __future__ import annotations

import random
import time
import urllib.request

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import free_port
from tests.metrics.prometheus import Prometheus
from tests.metrics.support import put

pytestmark = pytest.mark.integration

CONFIG = {
    "receivers": {"otlp": {"protocols": {"http": {"endpoint": "${env:HTTP}"}}}},
    "processors": {"anomaly": {"warmup": 30}},
    "connectors": {"anomaly_metrics": {"metrics_flush_interval": "200ms"}},
    "exporters": {"prometheus": {"endpoint": "${env:PROMETHEUS_EXPORTER}", "enable_open_metrics": True}},
    "service": {
        "pipelines": {
            "traces": {"receivers": ["otlp"], "processors": ["anomaly"], "exporters": ["anomaly_metrics"]},
            "metrics": {"receivers": ["anomaly_metrics"], "exporters": ["prometheus"]},
        },
        "telemetry": {"metrics": {"address": "${env:METRICS}"}},
    },
}
SPIKED = "service.name=payment span.name=Charge"


def spans(service: str, operation: str, durations_ms: list[float], start: float, trace_byte: int) -> ExportTraceServiceRequest:
    """One request of spans 100 ms apart, each in a trace of its own (``trace_byte`` marks the traces)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    put(resource_spans.resource.attributes, {"service.name": service, "service.namespace": "shop"})
    records = resource_spans.scope_spans.add().spans
    for number, duration in enumerate(durations_ms):
        end = int((start + number * 0.1) * 1e9)
        records.add(
            name=operation,
            trace_id=bytes([trace_byte]) + number.to_bytes(15, "big"),
            span_id=(number + 1).to_bytes(8, "big"),
            start_time_unix_nano=end - int(duration * 1e6),
            end_time_unix_nano=end,
        )
    return request


def post(url: str, request) -> None:
    http = urllib.request.Request(
        url + "/v1/traces", data=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(http, timeout=10) as response:
        assert response.status == 200


def test_prometheus_finds_score_histograms_the_spiking_keys_anomalies_and_their_exemplars(tmp_path, otelml_process):
    exporter = f"127.0.0.1:{free_port()}"
    otelml = otelml_process(CONFIG, extra_env={"PROMETHEUS_EXPORTER": exporter}).start()
    with Prometheus(tmp_path, {"scores": exporter}, honor_labels=("scores",)) as prometheus:
        noise = random.Random(3)
        start = time.time() - 60  # record times; exemplars carry them
        for service, operation, base in (("payment", "Charge", 60.0), ("auth", "Login", 5.0)):
            post(otelml.http_url, spans(service, operation, [base * noise.lognormvariate(0, 0.1) for _ in range(200)], start, 1))
        post(otelml.http_url, spans("payment", "Charge", [60.0 * 40] * 3, start + 25, 0xEE))
        histograms = prometheus.wait_for('otelml_records_score_count{job="shop/payment"} >= 203')
        assert histograms, prometheus.log()
        buckets = prometheus.query('sum by (otelml_key) (otelml_records_score_bucket{le="+Inf"})')
        assert {series["metric"]["otelml_key"]: float(series["value"][1]) for series in buckets} == {
            SPIKED: 203.0,
            "service.name=auth span.name=Login": 200.0,
        }
        anomalies = prometheus.wait_for(f'otelml_records_anomalies_total{{otelml_key="{SPIKED}"}} > 0')
        assert anomalies, prometheus.query("otelml_records_anomalies_total")
        assert anomalies[0]["metric"]["job"] == "shop/payment"
        assert anomalies[0]["metric"]["span_name"] == "Charge"
        assert not prometheus.query('otelml_records_anomalies_total{otelml_key="service.name=auth span.name=Login"} > 0')
        exemplars = []
        deadline = time.monotonic() + 20
        while not exemplars and time.monotonic() < deadline:
            exemplars = [
                e
                for series in prometheus.exemplars(f'otelml_records_score_bucket{{otelml_key="{SPIKED}"}}', start)
                for e in series["exemplars"]
            ]
            time.sleep(0.25)
        assert exemplars, prometheus.log()
        assert {e["labels"]["trace_id"][:2] for e in exemplars} == {"ee"}
        assert all(float(e["value"]) >= 0.5 for e in exemplars)
    assert otelml.metrics()["otelml_anomaly_metrics_keys", frozenset({("connector", "anomaly_metrics")})] == 2
