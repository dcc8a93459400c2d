"""config/agent.yaml and config/gateway.yaml, run as they ship, against a real broker."""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otelml import pdata
from otelml.encoding import any_value_to_python
from otelml.pdata import Signal
from tests.conftest import REPO, logs_of, read_batches, spans_of
from tests.kafka.support import eventually, gauge_metrics, numbered_logs, read_topic, sequence_numbers, traces

TRACES, SPANS_PER_TRACE, LOGS = 20, 3, 50


def shipped(otelml_process, name: str, broker: str):
    """config/<name> as it ships, its endpoints and broker pointed at this test's."""
    process = otelml_process((REPO / "config" / name).read_text(), {"KAFKA_BROKERS": broker})
    process.env.update(OTELML_GRPC_ENDPOINT=process.env["GRPC"], OTELML_HTTP_ENDPOINT=process.env["HTTP"],
                       OTELML_METRICS_ENDPOINT=process.env["METRICS"], OTELML_OUTPUT=str(process.workdir / "gateway.jsonl"))
    return process


async def test_agent_to_kafka_to_gateway_to_file_and_kafka(tansu, otelml_process):
    for topic, partitions in (("otlp_spans", 4), ("otlp_logs", 2), ("otlp_metrics", 1)):
        await tansu.create_topic(topic, partitions)
    gateway = shipped(otelml_process, "gateway.yaml", tansu.bootstrap).start()
    agent = shipped(otelml_process, "agent.yaml", tansu.bootstrap).start()
    sent_spans = traces(TRACES, SPANS_PER_TRACE)
    with grpc.insecure_channel(agent.grpc_endpoint) as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(sent_spans, timeout=10)
        logs_service_pb2_grpc.LogsServiceStub(channel).Export(numbered_logs(0, LOGS), timeout=10)
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(gauge_metrics(5), timeout=10)

    out = gateway.workdir / "gateway.jsonl"
    await eventually(lambda: len(spans_of(read_batches(out, Signal.TRACES))) >= TRACES * SPANS_PER_TRACE
                     and len(logs_of(read_batches(out, Signal.LOGS))) >= LOGS and read_batches(out, Signal.METRICS),
                     what="the gateway writing everything")
    assert agent.stop() == 0 and gateway.stop() == 0

    written = spans_of(read_batches(out, Signal.TRACES))
    assert sorted(s.span_id for s in written) == sorted(s.span_id for rs in sent_spans.resource_spans for ss in rs.scope_spans for s in ss.spans)
    assert sorted(sequence_numbers(logs_of(read_batches(out, Signal.LOGS)))) == list(range(LOGS))
    assert all(any(kv.key == "otelml.score" for kv in span.attributes) for span in written), "the gateway scores every span"
    assert read_batches(out, Signal.METRICS) == [gauge_metrics(5)]

    # The agent keyed every trace by its ID; the gateway's scored output keeps that partitioning.
    for topic in ("otlp_spans", "otlp_spans_scored"):
        messages = await asyncio.to_thread(read_topic, tansu.bootstrap, topic, TRACES, settle=0.3)
        assert len(messages) == TRACES, topic
        for message in messages:
            batch = pdata.from_proto(message.value(), Signal.TRACES)
            assert {s.trace_id.hex() for rs in batch.resource_spans for ss in rs.scope_spans for s in ss.spans} == {message.key().decode()}
    scored_logs = await asyncio.to_thread(read_topic, tansu.bootstrap, "otlp_logs_scored", 1, settle=0.3)
    records = [r for m in scored_logs for rl in pdata.from_proto(m.value(), Signal.LOGS).resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert sorted(sequence_numbers(records)) == list(range(LOGS))
    assert all(0 <= any_value_to_python(kv.value) <= 1 for r in records for kv in r.attributes if kv.key == "otelml.score")
