"""health_check and the internal Prometheus metrics, with otelml running as a subprocess."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from otelml.component import ComponentID
from otelml.service import Service
from tests.conftest import build_config, metric, otlp_to_file_config

pytestmark = pytest.mark.integration

SPANS, LOGS, POINTS = 7, 5, 6
QUEUE_SIZE = 50


def telemetry_forms(process) -> dict:
    """service.telemetry.metrics in each accepted form, serving on the port chosen for ``process``."""
    return {
        "address": {"address": "${env:METRICS}"},
        "readers": {"readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": process.ports["METRICS"]}}}}]},
    }


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def send_all(process) -> None:
    """Spans and logs over OTLP/gRPC, metric points over OTLP/HTTP protobuf."""
    traces = ExportTraceServiceRequest()
    scope = traces.resource_spans.add().scope_spans.add()
    for number in range(SPANS):
        scope.spans.add(name=f"span {number}", trace_id=bytes(range(16)), span_id=(number + 1).to_bytes(8, "big"))
    logs = ExportLogsServiceRequest()
    for number in range(LOGS):
        logs.resource_logs.add().scope_logs.add().log_records.add().body.string_value = f"log {number}"
    with grpc.insecure_channel(process.grpc_endpoint) as channel:
        for service, request, response in (
            ("trace.v1.TraceService", traces, ExportTraceServiceResponse),
            ("logs.v1.LogsService", logs, ExportLogsServiceResponse),
        ):
            export = channel.unary_unary(
                f"/opentelemetry.proto.collector.{service}/Export",
                request_serializer=type(request).SerializeToString,
                response_deserializer=response.FromString,
            )
            export(request, timeout=10)
    metrics = ExportMetricsServiceRequest()
    points = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="requests").sum.data_points
    for number in range(POINTS):
        points.add(as_int=number)
    request = urllib.request.Request(
        f"{process.http_url}/v1/metrics", data=metrics.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def wait_for_exports(process) -> dict:
    """Metrics once the file exporter has sent everything (the batch processor holds data up to its timeout)."""
    deadline = time.monotonic() + 20
    while True:
        samples = process.metrics()
        sent = [
            metric(samples, f"otelcol_exporter_sent_{item}_total", exporter="file")
            for item in ("spans", "log_records", "metric_points")
        ]
        if sent == [SPANS, LOGS, POINTS] or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


@pytest.mark.parametrize("form", ["address", "readers"])
def test_health_and_collector_metric_names_while_running(otelml_process, form):
    config = otlp_to_file_config({"sending_queue": {"enabled": True, "queue_size": QUEUE_SIZE}})
    process = otelml_process(config)
    config["service"]["telemetry"]["metrics"] = telemetry_forms(process)[form]
    process.config_path.write_text(json.dumps(config))  # JSON is YAML
    with process:
        status, body = get(f"http://{process.env['HEALTH']}/")
        assert status == 200
        assert json.loads(body)["status"] == "Server available"

        send_all(process)
        samples = wait_for_exports(process)
        assert metric(samples, "otelcol_receiver_accepted_spans_total", receiver="otlp", transport="grpc") == SPANS
        assert metric(samples, "otelcol_receiver_accepted_log_records_total", receiver="otlp", transport="grpc") == LOGS
        assert metric(samples, "otelcol_receiver_accepted_metric_points_total", receiver="otlp", transport="http") == POINTS
        assert metric(samples, "otelcol_receiver_refused_spans_total", receiver="otlp") == 0
        for item, count in (("spans", SPANS), ("log_records", LOGS), ("metric_points", POINTS)):
            assert metric(samples, f"otelcol_exporter_sent_{item}_total", exporter="file") == count
        for signal, count in (("traces", SPANS), ("logs", LOGS), ("metrics", POINTS)):
            assert metric(samples, "otelcol_processor_incoming_items_total", processor="batch", otel_signal=signal) == count
            assert metric(samples, "otelcol_processor_outgoing_items_total", processor="batch", otel_signal=signal) == count
            assert metric(samples, "otelcol_exporter_queue_capacity", exporter="file", data_type=signal) == QUEUE_SIZE
            assert ("otelcol_exporter_queue_size", frozenset({("exporter", "file"), ("data_type", signal)})) in samples
        names = {name for name, _ in samples}
        assert {"otelcol_exporter_send_failed_spans_total", "otelcol_exporter_enqueue_failed_log_records_total"}.isdisjoint(names)
    assert "receiver otlp" in process.log() and "exporter file" in process.log()


async def test_health_check_answers_503_once_the_service_is_not_running():
    service = Service(
        build_config(
            {
                "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
                "exporters": {"debug": {}},
                "extensions": {"health_check": {"endpoint": "127.0.0.1:0", "path": "/health"}},
                "service": {
                    "extensions": ["health_check"],
                    "pipelines": {"logs": {"receivers": ["otlp"], "exporters": ["debug"]}},
                    "telemetry": {"metrics": {"address": "127.0.0.1:0"}},
                },
            }
        )
    )
    await service.start()
    try:
        host, port = service.graph.extensions[ComponentID("health_check")].address
        metrics_host, metrics_port = service.metrics_address
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/health") as response:
                assert response.status == 200
            async with session.get(f"http://{metrics_host}:{metrics_port}/metrics") as response:
                assert response.status == 200
                assert "otelcol_exporter_queue_capacity" in await response.text()
            service.report_fatal_error("exporter debug", RuntimeError("disk gone"))
            async with session.get(f"http://{host}:{port}/health") as response:
                assert response.status == 503
                assert (await response.json())["status"] == "Server not available"
    finally:
        await service.shutdown()
