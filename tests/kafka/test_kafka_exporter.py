"""The kafka exporter against a real broker, read back by librdkafka (confluent-kafka), a client we did not write."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from confluent_kafka import Producer
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otelml import pdata
from otelml.confmap import ConfigError
from otelml.encoding import BatchBuilder, Encoding, any_value_to_python
from otelml.errors import PermanentError, RetryableError
from otelml.pdata import Signal, count_items
from tests.conftest import build_config
from tests.kafka.support import (
    duplicates,
    eventually,
    gauge_metrics,
    measure,
    numbered_logs,
    read_topic,
    sequence_numbers,
    started,
    traces,
)

pytestmark = pytest.mark.integration

ENCODINGS = {
    Signal.TRACES: ["otlp_proto", "otlp_json"],
    Signal.METRICS: ["otlp_proto", "otlp_json"],
    Signal.LOGS: ["otlp_proto", "otlp_json", "raw", "text", "json"],
}


def decode(signal: Signal, encoding: str, messages) -> pdata.Batch:
    builder = BatchBuilder(signal, Encoding(encoding))
    for message in messages:
        builder.add(message.value())
    return builder.batch


def otlp_to_kafka_config() -> dict:
    """OTLP in; one kafka exporter per encoding, each writing its own topics."""
    exporters = {
        f"kafka/{encoding}": {
            "brokers": "${env:KAFKA_BROKERS}",
            **{s.value: {"topic": f"{s.value}-{encoding}", "encoding": encoding} for s in Signal if encoding in ENCODINGS[s]},
        }
        for encoding in ENCODINGS[Signal.LOGS]
    }
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:GRPC}"}}}},
        "exporters": exporters,
        "service": {
            "pipelines": {s.value: {"receivers": ["otlp"], "exporters": [f"kafka/{e}" for e in ENCODINGS[s]]} for s in Signal},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }


async def test_otlp_in_kafka_out_in_every_encoding(tansu, otelml_process):
    sent = {Signal.TRACES: traces(5, 4), Signal.LOGS: numbered_logs(0, 30), Signal.METRICS: gauge_metrics(6)}
    with otelml_process(otlp_to_kafka_config(), {"KAFKA_BROKERS": tansu.bootstrap}) as otelml:
        with grpc.insecure_channel(otelml.grpc_endpoint) as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(sent[Signal.TRACES], timeout=10)
            logs_service_pb2_grpc.LogsServiceStub(channel).Export(sent[Signal.LOGS], timeout=10)
            metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(sent[Signal.METRICS], timeout=10)
        for signal, encodings in ENCODINGS.items():
            for encoding in encodings:
                per_record = Encoding(encoding).per_record
                expected_messages = count_items(sent[signal]) if per_record else 1
                messages = await asyncio.to_thread(
                    read_topic, tansu.bootstrap, f"{signal.value}-{encoding}", expected_messages, settle=0.2
                )
                assert len(messages) == expected_messages, (signal, encoding)
                received = decode(signal, encoding, messages)
                if per_record:
                    bodies = [
                        any_value_to_python(r.body)
                        for rl in received.resource_logs
                        for sl in rl.scope_logs
                        for r in sl.log_records
                    ]
                    expected = [f"record {i}" for i in range(30)]
                    if encoding == "raw":
                        expected = [text.encode() for text in expected]
                    elif encoding == "json":
                        expected = [{"body": text} for text in expected]
                    assert sorted(bodies, key=str) == sorted(expected, key=str), encoding
                else:
                    assert received == sent[signal], (signal, encoding)


async def test_partition_traces_by_id_keys_each_trace(tansu):
    await tansu.create_topic("spans", partitions=4)
    async with started(
        "kafka_exporter", {"brokers": [tansu.bootstrap], "traces": {"topic": "spans"}, "partition_traces_by_id": True}
    ) as (exporter, _):
        await exporter.consume(traces(12, 5, services=3))
    messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "spans", 12, settle=0.3)
    assert len(messages) == 12
    partition_of_key = {}
    for message in messages:
        batch = pdata.from_proto(message.value(), Signal.TRACES)
        trace_ids = {span.trace_id.hex() for rs in batch.resource_spans for ss in rs.scope_spans for span in ss.spans}
        assert trace_ids == {message.key().decode()}, "one message carries one trace, keyed by its hex ID"
        assert count_items(batch) == 5
        assert len(batch.resource_spans) == 3, "each span keeps its own resource"
        partition_of_key.setdefault(message.key(), message.partition())
    assert len(partition_of_key) == 12
    assert len(set(partition_of_key.values())) > 1, "keys spread over partitions"

    # The same trace IDs sent again land on the same partitions.
    async with started(
        "kafka_exporter", {"brokers": [tansu.bootstrap], "traces": {"topic": "spans"}, "partition_traces_by_id": True}
    ) as (exporter, _):
        await exporter.consume(traces(12, 1))
    messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "spans", 24, settle=0.3)
    for message in messages:
        assert partition_of_key[message.key()] == message.partition()


async def test_partition_by_references_keys_each_group_and_places_it_as_librdkafka_murmur2_does(tansu):
    await tansu.create_topic("keyed-spans", partitions=5)
    await tansu.create_topic("keyed-logs", partitions=3)
    spans = traces(8, 6, services=3)
    logs = numbered_logs(0, 12, service="edge")
    for record in logs.resource_logs[0].scope_logs[0].log_records[:10]:
        record.attributes.add(key="client.address").value.string_value = f"10.0.0.{record.time_unix_nano % 4}"
    settings = {
        "brokers": [tansu.bootstrap],
        "traces": {"topic": "keyed-spans", "partition_by": ["resource.service.name", "span.name"]},
        "logs": {"topic": "keyed-logs", "partition_by": ["attributes.client.address"]},
    }
    async with started("kafka_exporter", settings) as (exporter, _):
        await exporter.consume(spans)
        await exporter.consume(logs)

    span_messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "keyed-spans", 1, settle=0.5)
    span_partitions = {}
    for message in span_messages:
        batch = pdata.from_proto(message.value(), Signal.TRACES)
        keys = {
            f"{rs.resource.attributes[0].value.string_value}|{span.name}"
            for rs in batch.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }
        assert keys == {message.key().decode()}, "one message per service and span name, keyed by both joined"
        span_partitions[message.key()] = message.partition()
    # traces() gives span index i of every trace to service i % 3 as op-i: 6 distinct keys, 8 spans each.
    assert len(span_messages) == len(span_partitions) == 6
    assert sum(count_items(pdata.from_proto(m.value(), Signal.TRACES)) for m in span_messages) == 48

    log_messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "keyed-logs", 1, settle=0.5)
    log_keys = {
        m.key(): sorted(
            sequence_numbers(
                r for rl in pdata.from_proto(m.value(), Signal.LOGS).resource_logs for sl in rl.scope_logs for r in sl.log_records
            )
        )
        for m in log_messages
    }
    assert log_keys == {
        b"10.0.0.0": [0, 4, 8],
        b"10.0.0.1": [1, 5, 9],
        b"10.0.0.2": [2, 6],
        b"10.0.0.3": [3, 7],
        b"": [10, 11],
    }, "records without the attribute share the empty key"

    # librdkafka with the Java clients' murmur2 partitioner places the same keys on the same partitions.
    def produce_keys() -> None:
        producer = Producer({"bootstrap.servers": tansu.bootstrap, "partitioner": "murmur2_random"})
        for key in span_partitions:
            producer.produce("keyed-spans", b"librdkafka", key=key)
        assert producer.flush(15) == 0

    await asyncio.to_thread(produce_keys)
    everything = await asyncio.to_thread(read_topic, tansu.bootstrap, "keyed-spans", 2 * len(span_partitions), settle=0.3)
    by_librdkafka = {m.key(): m.partition() for m in everything if m.value() == b"librdkafka"}
    assert by_librdkafka == span_partitions
    assert len(set(span_partitions.values())) > 1, "keys spread over partitions"


def test_partition_by_conflicts_and_bad_references_are_config_problems():
    document = {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "exporters": {
            "kafka": {
                "partition_traces_by_id": True,
                "partition_logs_by_resource_attributes": True,
                "traces": {"partition_by": ["resource.service.name", "log.severity_text"]},
                "logs": {"partition_by": ["attributes.client.address", "attributes.client.address"]},
                "metrics": {"partition_by": ["resource.host.name"]},
            }
        },
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["kafka"]}}},
    }
    with pytest.raises(ConfigError) as caught:
        build_config(document)
    assert [p for p in caught.value.problems if p.startswith("exporters::")] == [
        "exporters::kafka::traces::partition_by: conflicts with partition_traces_by_id: true (a message has one key); set one of them",
        'exporters::kafka::traces::partition_by::1: "log.severity_text" does not exist in traces',
        "exporters::kafka::logs::partition_by: conflicts with partition_logs_by_resource_attributes: true (a message has one key); set one of them",
        "exporters::kafka::logs::partition_by: lists a reference more than once",
        "exporters::kafka::metrics::partition_by: not supported for metrics (use partition_metrics_by_resource_attributes)",
    ]


async def test_partition_logs_by_resource_attributes_and_topic_from_attribute(tansu):
    batch = numbered_logs(0, 3, service="a")
    batch.resource_logs.extend(numbered_logs(3, 2, service="b").resource_logs)
    batch.resource_logs.extend(numbered_logs(5, 4, service="a").resource_logs)
    routed = batch.resource_logs[1].resource.attributes.add(key="kafka.topic")
    routed.value.string_value = "logs-b"
    async with started(
        "kafka_exporter",
        {
            "brokers": [tansu.bootstrap],
            "logs": {"topic": "logs-default"},
            "partition_logs_by_resource_attributes": True,
            "topic_from_attribute": "kafka.topic",
        },
    ) as (exporter, _):
        await exporter.consume(batch)
        await exporter.consume(batch)
    default = await asyncio.to_thread(read_topic, tansu.bootstrap, "logs-default", 2, settle=0.3)
    routed = await asyncio.to_thread(read_topic, tansu.bootstrap, "logs-b", 2, settle=0.3)
    assert len(default) == 2 and len(routed) == 2, "resources with equal attributes share one message"
    assert len({m.key() for m in default}) == 1, "equal resource attributes give equal keys"
    assert len({m.key() for m in routed}) == 1
    assert routed[0].key() != default[0].key()
    assert len(default[0].key()) == 32
    records = [
        r
        for rl in pdata.from_proto(default[0].value(), Signal.LOGS).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert sequence_numbers(records) == [0, 1, 2, 5, 6, 7, 8]


async def test_max_message_bytes_splits_and_refuses_a_single_oversized_record(tansu):
    limit = 4096
    async with started(
        "kafka_exporter",
        {
            "brokers": [tansu.bootstrap],
            "logs": {"topic": "small"},
            "producer": {"max_message_bytes": limit},
            "sending_queue": {"enabled": False},
        },
    ) as (exporter, telemetry):
        batch = numbered_logs(0, 1000)
        assert len(batch.SerializeToString()) > 4 * limit
        await exporter.consume(batch)
        huge = numbered_logs(1000, 1)
        huge.resource_logs[0].scope_logs[0].log_records[0].body.string_value = "x" * (2 * limit)
        with pytest.raises(PermanentError):
            await exporter.consume(huge)
    messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "small", 5, settle=0.5)
    assert len(messages) > 4
    assert all(len(m.value()) <= limit for m in messages)
    records = [
        r
        for m in messages
        for rl in pdata.from_proto(m.value(), Signal.LOGS).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert sorted(sequence_numbers(records)) == list(range(1000))
    assert telemetry.value("otelml_dropped_items_total", component="kafka", otel_signal="logs", reason="permanent_error") == 1


async def test_an_oversized_record_is_refused_alone_and_the_rest_of_its_batch_is_sent(tansu):
    limit = 4096
    async with started(
        "kafka_exporter",
        {
            "brokers": [tansu.bootstrap],
            "logs": {"topic": "mixed"},
            "producer": {"max_message_bytes": limit},
            "sending_queue": {"enabled": False},
        },
    ) as (exporter, telemetry):
        batch = numbered_logs(0, 200)
        batch.resource_logs[0].scope_logs[0].log_records[70].body.string_value = "x" * (2 * limit)
        await exporter.consume(batch)
    messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "mixed", 2, settle=0.5)
    records = [
        r for m in messages for rl in pdata.from_proto(m.value(), Signal.LOGS).resource_logs for r in rl.scope_logs[0].log_records
    ]
    # The whole batch used to be refused for its one oversized record: 200 dropped, none sent.
    assert sorted(sequence_numbers(records)) == [seq for seq in range(200) if seq != 70]
    assert telemetry.value("otelcol_exporter_sent_log_records_total", exporter="kafka") == 199
    assert telemetry.value("otelcol_exporter_send_failed_log_records_total", exporter="kafka") == 1
    assert telemetry.value("otelml_dropped_items_total", component="kafka", otel_signal="logs", reason="permanent_error") == 1


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
async def test_every_compression_is_readable_by_librdkafka(tansu, compression):
    async with started(
        "kafka_exporter",
        {
            "brokers": [tansu.bootstrap],
            "logs": {"topic": "compressed", "encoding": "json"},
            "producer": {"compression": compression, "required_acks": -1},
        },
    ) as (exporter, telemetry):
        await exporter.consume(numbered_logs(0, 20))
    messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "compressed", 20, settle=0.2)
    assert sorted(json.loads(m.value())["body"] for m in messages) == sorted(f"record {i}" for i in range(20))
    assert telemetry.value("otelcol_exporter_sent_log_records_total", exporter="kafka") == 20


async def test_broker_outage_delivers_what_was_queued_and_counts_what_overflowed(gated_tansu):
    tansu, gate = gated_tansu
    await tansu.create_topic("outage", partitions=1)
    accepted, refused = [], []
    async with started(
        "kafka_exporter",
        {
            "brokers": [tansu.bootstrap],
            "logs": {"topic": "outage"},
            "timeout": "1s",
            "retry_on_failure": {"initial_interval": "200ms", "max_interval": "1s", "max_elapsed_time": 0},
            "sending_queue": {"num_consumers": 1, "queue_size": 5},
        },
    ) as (exporter, telemetry):
        await exporter.consume(numbered_logs(0, 10))
        assert len(await asyncio.to_thread(read_topic, tansu.bootstrap, "outage", 1, settle=0)) == 1
        gate.close()
        await tansu.stop()
        # Batches while the broker is down: the queue holds some, the rest is refused (a full queue
        # refuses at once, so the pace of the batches does not matter; a short pause lets the worker retry).
        for index in range(12):
            batch = numbered_logs(100 + 10 * index, 10)
            try:
                await exporter.consume(batch)
                accepted.append(batch)
            except RetryableError:
                refused.append(batch)
            await asyncio.sleep(0.2)
        await tansu.start()
        # The in-memory broker lost its topics; clients come back once it has the topic again.
        await tansu.create_topic("outage", partitions=1)
        gate.open()
        await eventually(
            lambda: telemetry.value("otelcol_exporter_sent_log_records_total", exporter="kafka") == 10 * (1 + len(accepted)),
            timeout=60,
            what="the queued batches being sent after the outage",
        )
    assert accepted and refused, "the outage both filled the queue and overflowed it"
    assert telemetry.value("otelcol_exporter_enqueue_failed_log_records_total", exporter="kafka") == 10 * len(refused)
    messages = await asyncio.to_thread(read_topic, tansu.bootstrap, "outage", len(accepted), settle=1.0)
    received = sequence_numbers(
        r
        for m in messages
        for rl in pdata.from_proto(m.value(), Signal.LOGS).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    )
    expected = sorted(s for batch in accepted for s in sequence_numbers(batch.resource_logs[0].scope_logs[0].log_records))
    assert sorted(set(received)) == expected
    measure(
        f"kafka exporter, broker outage over 12 batches: {len(accepted)} batches queued and delivered, {len(refused)} refused by the full queue, "
        f"{duplicates(received)} duplicate records"
    )
