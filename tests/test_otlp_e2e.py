"""End to end through the CLI: the OpenTelemetry SDK sends over OTLP, the file exporter writes it."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request

import grpc
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelml.pdata import Signal
from otelml.synthetic import make_trace_request
from tests.conftest import REPO, logs_of, otlp_to_file_config, read_batches, spans_of

pytestmark = pytest.mark.integration

SPANS, LOGS = 40, 25


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def sdk_exporters(protocol: str, otelml):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = otelml.grpc_endpoint
        return (
            OTLPSpanExporter(endpoint, insecure=True),
            OTLPLogExporter(endpoint, insecure=True),
            OTLPMetricExporter(endpoint, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = otelml.http_url
    return (OTLPSpanExporter(f"{base}/v1/traces"), OTLPLogExporter(f"{base}/v1/logs"), OTLPMetricExporter(f"{base}/v1/metrics"))


def send_with_sdk(protocol: str, otelml):
    """Send SPANS spans, LOGS log records and one counter through the SDK; return what the SDK recorded."""
    span_exporter, log_exporter, metric_exporter = sdk_exporters(protocol, otelml)
    resource = Resource.create({"service.name": f"e2e-{protocol}"})
    spans_seen, logs_seen = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans_seen))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs_seen))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)]
    )

    tracer = tracer_provider.get_tracer("e2e")
    logger = logger_provider.get_logger("e2e")
    counter = meter_provider.get_meter("e2e").create_counter("e2e.requests")
    for i in range(SPANS):
        with tracer.start_as_current_span(f"op-{i % 4}", attributes={"index": i, "user.id": f"u{i}", "ok": i % 2 == 0}):
            pass
    for i in range(LOGS):
        logger.emit(
            LogRecord(body=f"message {i}", severity_number=SeverityNumber.WARN, severity_text="WARN", attributes={"index": i})
        )
    counter.add(5, {"route": "/a"})
    counter.add(7, {"route": "/b"})
    for provider in (tracer_provider, logger_provider, meter_provider):
        provider.shutdown()
    return spans_seen.get_finished_spans(), logs_seen.get_finished_logs()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_sdk_spans_logs_and_metrics_arrive_exactly(protocol, otelml_process):
    with otelml_process(otlp_to_file_config()) as otelml:
        sent_spans, sent_logs = send_with_sdk(protocol, otelml)
        out = otelml.workdir / "out.jsonl"
        assert wait_for(lambda: len(spans_of(read_batches(out, Signal.TRACES))) >= SPANS)
        assert wait_for(lambda: len(logs_of(read_batches(out, Signal.LOGS))) >= LOGS)
        assert wait_for(lambda: read_batches(out, Signal.METRICS))

    received = {(s.trace_id.hex(), s.span_id.hex()): s for s in spans_of(read_batches(out, Signal.TRACES))}
    assert len(received) == SPANS
    for sent in sent_spans:
        context = sent.get_span_context()
        span = received[(f"{context.trace_id:032x}", f"{context.span_id:016x}")]
        assert span.name == sent.name
        assert span.start_time_unix_nano == sent.start_time
        attributes = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
        assert attributes == dict(sent.attributes)

    bodies = sorted(r.body.string_value for r in logs_of(read_batches(out, Signal.LOGS)))
    assert bodies == sorted(f"message {i}" for i in range(LOGS)) == sorted(sent.log_record.body for sent in sent_logs)

    metrics = read_batches(out, Signal.METRICS)
    points = {
        dict((a.key, a.value.string_value) for a in p.attributes)["route"]: p.as_int
        for b in metrics
        for rm in b.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "e2e.requests"
        for p in m.sum.data_points
    }
    assert points == {"/a": 5, "/b": 7}


def test_handwritten_otlp_json_over_http(otelml_process):
    body = (REPO / "receivers/otlp/testdata/traces.json").read_bytes()
    with otelml_process(otlp_to_file_config()) as otelml:
        request = urllib.request.Request(f"{otelml.http_url}/v1/traces", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("application/json")
            assert json.loads(response.read()) == {}
        out = otelml.workdir / "out.jsonl"
        assert wait_for(lambda: read_batches(out, Signal.TRACES))
    line = next(text for text in out.read_text().splitlines() if "resourceSpans" in text)
    span = json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert span["spanId"] == "eee19b7ec3c1b174"
    assert span["parentSpanId"] == "eee19b7ec3c1b173"
    assert span["attributes"][1] == {"key": "http.status_code", "value": {"intValue": "200"}}
    assert len(spans_of(read_batches(out, Signal.TRACES))) == 2


def test_otlp_exporter_forwards_to_a_second_otelml(otelml_process):
    gateway = otelml_process(otlp_to_file_config()).start()
    agent_config = otlp_to_file_config()
    agent_config["exporters"] = {
        "otlp": {"endpoint": gateway.grpc_endpoint, "tls": {"insecure": True}, "retry_on_failure": {"initial_interval": "100ms"}}
    }
    for pipeline in agent_config["service"]["pipelines"].values():
        pipeline["exporters"] = ["otlp"]
    with otelml_process(agent_config) as agent:
        sent_spans, _ = send_with_sdk("grpc", agent)
        out = gateway.workdir / "out.jsonl"
        assert wait_for(lambda: len(spans_of(read_batches(out, Signal.TRACES))) >= SPANS)
        sent_ids = {s.get_span_context().span_id for s in sent_spans}
        assert wait_for(lambda: len(logs_of(read_batches(out, Signal.LOGS))) >= LOGS)
        agent_metrics = agent.metrics()
    gateway.stop()
    received = spans_of(read_batches(out, Signal.TRACES))
    assert {int.from_bytes(s.span_id, "big") for s in received} == sent_ids
    assert len(received) == SPANS
    from tests.conftest import metric

    assert metric(agent_metrics, "otelcol_exporter_sent_spans_total", exporter="otlp") == SPANS


def test_sigterm_mid_load_writes_everything_acknowledged(otelml_process):
    config = otlp_to_file_config()
    config["processors"]["batch"] = {"timeout": "5s", "send_batch_size": 100_000}
    otelml = otelml_process(config).start()
    acknowledged: list[bytes] = []
    stop_sending = threading.Event()

    def sender():
        with grpc.insecure_channel(otelml.grpc_endpoint) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=lambda b: b,
            )
            index = 0
            while not stop_sending.is_set():
                request = make_trace_request(spans=50, seed=index)
                try:
                    export(request, timeout=5)
                except grpc.RpcError:
                    return
                acknowledged.extend(s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
                index += 1

    thread = threading.Thread(target=sender)
    thread.start()
    assert wait_for(lambda: len(acknowledged) >= 2000, timeout=30)
    assert otelml.stop(signal.SIGTERM) == 0
    stop_sending.set()
    thread.join(10)
    written = {s.span_id for s in spans_of(read_batches(otelml.workdir / "out.jsonl", Signal.TRACES))}
    assert set(acknowledged) <= written
    assert "shutdown complete" in otelml.log()
