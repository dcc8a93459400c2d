"""config/agent.yaml and config/gateway.yaml, run as they ship, against a real broker."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otelml import pdata
from otelml.encoding import any_value_to_python
from otelml.pdata import Signal
from otelml.synthetic import make_trace_request
from tests.conftest import REPO, logs_of, read_batches, spans_of
from tests.kafka.support import eventually, gauge_metrics, numbered_logs, read_topic, sequence_numbers, traces

pytestmark = pytest.mark.integration

TRACES, SPANS_PER_TRACE, LOGS = 20, 3, 50
# The gateways' shared secret for per-key state in the changelog.
SIGNING_KEY = "a-long-enough-signing-key"


def shipped(otelml_process, name: str, broker: str, output: str = "gateway.jsonl"):
    """config/<name> as it ships, its endpoints and broker pointed at this test's."""
    process = otelml_process(
        (REPO / "config" / name).read_text(), {"KAFKA_BROKERS": broker, "OTELML_CHECKPOINT_KEY": SIGNING_KEY}
    )
    process.env.update(
        OTELML_GRPC_ENDPOINT=process.env["GRPC"],
        OTELML_HTTP_ENDPOINT=process.env["HTTP"],
        OTELML_METRICS_ENDPOINT=process.env["METRICS"],
        OTELML_OUTPUT=str(process.workdir / output),
    )
    return process


def anomaly_keys(batch) -> list[str]:
    """The gateway's span key (service name and span name, as the agent's partition_by joins them) of each span."""
    return [
        f"{service_name(rs.resource)}|{span.name}" for rs in batch.resource_spans for ss in rs.scope_spans for span in ss.spans
    ]


def assigned(process, topic: str) -> list[int]:
    """The partitions of ``topic`` in the last assignment a gateway logged."""
    lines = [line for line in process.log().splitlines() if "partitions assigned:" in line]
    return (
        [int(part.split("[")[1].rstrip("]")) for part in lines[-1].split(": ")[-1].split(", ") if part.startswith(topic + "[")]
        if lines
        else []
    )


def service_name(resource) -> str:
    return next(kv.value.string_value for kv in resource.attributes if kv.key == "service.name")


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
    await eventually(
        lambda: (
            len(spans_of(read_batches(out, Signal.TRACES))) >= TRACES * SPANS_PER_TRACE
            and len(logs_of(read_batches(out, Signal.LOGS))) >= LOGS
            and read_batches(out, Signal.METRICS)
        ),
        what="the gateway writing everything",
    )
    assert agent.stop() == 0 and gateway.stop() == 0

    written = spans_of(read_batches(out, Signal.TRACES))
    assert sorted(s.span_id for s in written) == sorted(
        s.span_id for rs in sent_spans.resource_spans for ss in rs.scope_spans for s in ss.spans
    )
    assert sorted(sequence_numbers(logs_of(read_batches(out, Signal.LOGS)))) == list(range(LOGS))
    assert all(any(kv.key == "otelml.score" for kv in span.attributes) for span in written), "the gateway scores every span"
    assert read_batches(out, Signal.METRICS) == [gauge_metrics(5)]

    # The agent keyed spans by the gateway's anomaly key; the gateway's scored output is keyed by trace ID.
    keyed = await asyncio.to_thread(read_topic, tansu.bootstrap, "otlp_spans", SPANS_PER_TRACE, settle=0.3)
    assert len(keyed) == SPANS_PER_TRACE, "traces() gives each of 3 span names to one service"
    for message in keyed:
        assert set(anomaly_keys(pdata.from_proto(message.value(), Signal.TRACES))) == {message.key().decode()}
    scored = await asyncio.to_thread(read_topic, tansu.bootstrap, "otlp_spans_scored", TRACES, settle=0.5)
    for message in scored:
        batch = pdata.from_proto(message.value(), Signal.TRACES)
        assert {s.trace_id.hex() for rs in batch.resource_spans for ss in rs.scope_spans for s in ss.spans} == {
            message.key().decode()
        }
    assert len({message.key() for message in scored}) == TRACES
    scored_logs = await asyncio.to_thread(read_topic, tansu.bootstrap, "otlp_logs_scored", 1, settle=0.3)
    records = [
        r
        for m in scored_logs
        for rl in pdata.from_proto(m.value(), Signal.LOGS).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert sorted(sequence_numbers(records)) == list(range(LOGS))
    assert all(0 <= any_value_to_python(kv.value) <= 1 for r in records for kv in r.attributes if kv.key == "otelml.score")


async def test_two_gateways_fed_by_the_agent_score_each_key_on_one_gateway_only(tansu, otelml_process):
    await tansu.create_topic("otlp_spans", 6)
    for topic in ("otlp_logs", "otlp_metrics"):
        await tansu.create_topic(topic, 1)
    gateways = [shipped(otelml_process, "gateway.yaml", tansu.bootstrap, f"gateway-{n}.jsonl").start() for n in (1, 2)]
    agent = shipped(otelml_process, "agent.yaml", tansu.bootstrap).start()
    await eventually(
        lambda: (
            sorted(p for g in gateways for p in assigned(g, "otlp_spans")) == list(range(6))
            and all(assigned(g, "otlp_spans") for g in gateways)
        ),
        timeout=60,
        what="both gateways sharing the partitions",
    )
    sent = [make_trace_request(spans=400, services=8, operations=5, seed=seed) for seed in range(5)]
    with grpc.insecure_channel(agent.grpc_endpoint) as channel:
        for request in sent:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)
    outputs = [g.workdir / f"gateway-{n}.jsonl" for n, g in zip((1, 2), gateways)]
    await eventually(
        lambda: sum(len(spans_of(read_batches(out, Signal.TRACES))) for out in outputs) >= 2000,
        timeout=60,
        what="the gateways scoring every span",
    )
    assert agent.stop() == 0 and all(g.stop() == 0 for g in gateways)

    gateways_of_key: dict[str, set[int]] = {}
    for number, out in enumerate(outputs):
        for batch in read_batches(out, Signal.TRACES):
            for key in anomaly_keys(batch):
                gateways_of_key.setdefault(key, set()).add(number)
    assert len(gateways_of_key) == len({key for request in sent for key in anomaly_keys(request)}) > 20
    assert all(len(numbers) == 1 for numbers in gateways_of_key.values()), "every key is scored by one gateway only"
    assert {n for numbers in gateways_of_key.values() for n in numbers} == {0, 1}, "both gateways score some keys"
