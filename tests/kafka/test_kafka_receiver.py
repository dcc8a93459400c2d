"""The kafka receiver against a real broker, fed by producers we did not write (librdkafka, kcat, rotel)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import subprocess
from pathlib import Path

import grpc
import pytest
from aiokafka import TopicPartition as KafkaPartition
from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otelml.encoding import any_value_to_python
from otelml.errors import RetryableError
from otelml.pdata import Signal
from otelml.receivers.kafka.receiver import MAX_QUEUED_BATCHES
from otelml.synthetic import make_trace_request
from tests.conftest import free_port
from tests.kafka.conftest import TansuBroker
from tests.kafka.support import GatedSink, Host, Sink, eventually, numbered_logs, sequence_numbers, started

pytestmark = pytest.mark.integration

# Short sessions: tansu gives a group its first assignment after about half the session timeout.
GROUP_SETTINGS = {
    "session_timeout": "6s",
    "heartbeat_interval": "1s",
    "initial_offset": "earliest",
    "error_backoff": {"initial_interval": "50ms", "max_interval": "200ms"},
}
_ROTEL_PACKAGE = importlib.util.find_spec("rotel")
ROTEL = Path(_ROTEL_PACKAGE.submodule_search_locations[0]) / "rotel-agent" if _ROTEL_PACKAGE else None


def produce(bootstrap: str, topic: str, values: list[bytes], partition: int | None = None, headers: list | None = None) -> None:
    """Write ``values`` with librdkafka and wait until the broker has them."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        options = {"partition": partition} if partition is not None else {}
        producer.produce(topic, value, headers=headers, **options)
    assert producer.flush(15) == 0, "librdkafka could not deliver everything"


async def committed(bootstrap: str, group: str, topics: dict[str, int]) -> dict[tuple[str, int], int]:
    """The offsets ``group`` committed on ``topics`` ({name: partitions}), asked through librdkafka."""

    def fetch():
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            wanted = [TopicPartition(topic, p) for topic, count in topics.items() for p in range(count)]
            return consumer.committed(wanted, timeout=10)
        finally:
            consumer.close()

    return {(tp.topic, tp.partition): tp.offset for tp in await asyncio.to_thread(fetch) if tp.offset >= 0}


async def test_librdkafka_producer_feeds_otlp_proto_and_json_with_headers(tansu):
    spans = make_trace_request(spans=30, services=3)
    readings = [
        json.dumps({"device": f"d{i}", "temperature": 20.5 + i, "ok": True, "meta": {"unit": "C"}}).encode() for i in range(5)
    ]
    await asyncio.to_thread(produce, tansu.bootstrap, "spans", [spans.SerializeToString()], headers=[("tenant", b"acme")])
    await asyncio.to_thread(produce, tansu.bootstrap, "readings", readings)
    traces_sink, logs_sink = Sink(), Sink()
    settings = {
        **GROUP_SETTINGS,
        "brokers": [tansu.bootstrap],
        "traces": {"topics": ["spans"]},
        "logs": {"topics": ["readings"], "encoding": "json"},
        "header_extraction": {"extract_headers": True, "headers": ["tenant"]},
    }
    async with started("kafka_receiver", settings, {Signal.TRACES: traces_sink, Signal.LOGS: logs_sink}) as (_, telemetry):
        await eventually(lambda: traces_sink.items == 30 and logs_sink.items == 5, what="all data arriving")
    received = traces_sink.batches[0]
    for resource in received.resource_spans:
        attributes = {kv.key: kv.value.string_value for kv in resource.resource.attributes}
        assert attributes["kafka.header.tenant"] == "acme"
    assert sorted(s.span_id for rs in received.resource_spans for ss in rs.scope_spans for s in ss.spans) == sorted(
        s.span_id for rs in spans.resource_spans for ss in rs.scope_spans for s in ss.spans
    )
    records = sorted(logs_sink.records(), key=lambda r: any_value_to_python(r.body)["device"])
    assert any_value_to_python(records[2].body) == {"device": "d2", "temperature": 22.5, "ok": True, "meta": {"unit": "C"}}
    attributes = {kv.key: any_value_to_python(kv.value) for kv in records[2].attributes}
    assert attributes == {"device": "d2", "temperature": 22.5, "ok": True}, "top-level scalar fields only"
    assert telemetry.value("otelcol_receiver_accepted_spans_total", receiver="kafka", transport="kafka") == 30
    assert telemetry.value("otelcol_receiver_accepted_log_records_total", receiver="kafka", transport="kafka") == 5


@pytest.mark.parametrize("rotel_format, encoding", [("protobuf", "otlp_proto"), ("json", "otlp_json")])
async def test_rotel_collector_feeds_the_receiver(tansu, tmp_path, rotel_format, encoding):
    assert ROTEL is not None and ROTEL.is_file(), "rotel-agent is missing: install rotel (the test extra)"
    grpc_port = free_port()
    command = [
        str(ROTEL),
        "start",
        "--exporter",
        "kafka",
        "--kafka-exporter-brokers",
        tansu.bootstrap,
        "--kafka-exporter-format",
        rotel_format,
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint",
        f"127.0.0.1:{free_port()}",
        "--batch-timeout",
        "100ms",
    ]
    sink = Sink()
    with open(tmp_path / "rotel.log", "wb") as log:
        rotel = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        sent = make_trace_request(spans=200, services=4, seed=7)
        async with started(
            "kafka_receiver",
            {**GROUP_SETTINGS, "brokers": [tansu.bootstrap], "traces": {"topics": ["otlp_traces"], "encoding": encoding}},
            {Signal.TRACES: sink},
        ):
            await asyncio.to_thread(_export_when_listening, grpc_port, sent)
            await eventually(lambda: sink.items >= 200, what="rotel's spans arriving")
    finally:
        rotel.terminate()
        rotel.wait(10)
    received = {
        (s.trace_id, s.span_id): s for b in sink.batches for rs in b.resource_spans for ss in rs.scope_spans for s in ss.spans
    }
    expected = {(s.trace_id, s.span_id): s for rs in sent.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert received == expected


def _export_when_listening(port: int, request) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=20)
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)


async def test_retryable_refusal_pauses_only_its_partition_and_commits_after_acceptance(tansu):
    await tansu.create_topic("events", partitions=2)
    await asyncio.to_thread(
        produce, tansu.bootstrap, "events", [numbered_logs(i, 1).SerializeToString() for i in range(0, 10)], 0
    )
    await asyncio.to_thread(
        produce, tansu.bootstrap, "events", [numbered_logs(i, 1).SerializeToString() for i in range(100, 110)], 1
    )

    class RefusesPartitionZero(Sink):
        refusing = True
        refusals = 0

        async def consume(self, batch):
            if (
                self.refusing
                and min(sequence_numbers(r for rl in batch.resource_logs for sl in rl.scope_logs for r in sl.log_records)) < 100
            ):
                self.refusals += 1
                raise RetryableError("downstream is busy")
            await super().consume(batch)

    sink = RefusesPartitionZero()
    # Two messages per poll, so that partition 0 has more batches than may wait.
    settings = {
        **GROUP_SETTINGS,
        "brokers": [tansu.bootstrap],
        "group_id": "pausing",
        "logs": {"topics": ["events"]},
        "max_fetch_records": 2,
    }
    async with started("kafka_receiver", settings, {Signal.LOGS: sink}) as (receiver, telemetry):
        await eventually(
            lambda: sink.items == 10 and sink.refusals >= 3, what="partition 1 delivered while partition 0 is retried"
        )
        offsets = await committed(tansu.bootstrap, "pausing", {"events": 2})
        assert offsets.get(("events", 1)) == 10
        assert ("events", 0) not in offsets, "nothing of the refused partition is committed"
        refused = receiver._partitions[KafkaPartition("events", 0)]
        await eventually(lambda: refused.paused, what="the refused partition paused")
        assert len(refused.waiting) == MAX_QUEUED_BATCHES, "no more is fetched for it than may wait"
        sink.refusing = False
        await eventually(lambda: sink.items == 20, what="partition 0 delivered once accepted")
    assert await committed(tansu.bootstrap, "pausing", {"events": 2}) == {("events", 0): 10, ("events", 1): 10}
    assert sorted(sequence_numbers(sink.records())) == list(range(10)) + list(range(100, 110))
    assert telemetry.value("otelcol_receiver_refused_log_records_total", receiver="kafka", transport="kafka") >= 6, (
        "two records per refused attempt"
    )


async def test_marking_before_commits_ahead_of_the_pipeline(tansu):
    await tansu.create_topic("early", partitions=1)
    await asyncio.to_thread(produce, tansu.bootstrap, "early", [numbered_logs(i, 1).SerializeToString() for i in range(3)], 0)
    gate = asyncio.Event()
    sink = GatedSink(gate)
    settings = {
        **GROUP_SETTINGS,
        "brokers": [tansu.bootstrap],
        "group_id": "at-most-once",
        "logs": {"topics": ["early"]},
        "message_marking": {"after": False},
    }
    async with started("kafka_receiver", settings, {Signal.LOGS: sink}):
        await eventually(lambda: sink.held == 1, what="the batch held by the pipeline")

        async def marked() -> bool:
            return await committed(tansu.bootstrap, "at-most-once", {"early": 1}) == {("early", 0): 3}

        await eventually(marked, what="the offsets committed")
        assert sink.items == 0, "committed while the pipeline still holds the batch"
        gate.set()
        await eventually(lambda: sink.items == 3, what="the batch accepted")


async def test_bad_messages_are_counted_logged_and_skipped(tansu, kcat_environment, caplog):
    caplog.set_level(logging.WARNING, logger="otelml")
    good = numbered_logs(0, 2).SerializeToString()
    # kcat (librdkafka) writes one message per input line.
    subprocess.run(
        ["kcat", "-b", tansu.bootstrap, "-P", "-t", "spans", "-p", "0"],
        input=b"\x00\xff garbage, not protobuf\n",
        env=kcat_environment,
        check=True,
        timeout=30,
    )
    await asyncio.to_thread(produce, tansu.bootstrap, "texts", [b"fine", b"\xff\xfe not UTF-8", b"also fine"], 0)
    # The object nested deeper than OTLP protobuf can carry used to stop its partition for good, read again and again.
    deep = b'{"a":' * 40 + b"1" + b"}" * 40
    await asyncio.to_thread(produce, tansu.bootstrap, "json-logs", [good, json.dumps({"n": 1}).encode(), b"[1, 2]", deep], 0)
    logs_sink, traces_sink, json_sink = Sink(), Sink(), Sink()
    settings = {
        **GROUP_SETTINGS,
        "brokers": [tansu.bootstrap],
        "group_id": "bad-input",
        "traces": {"topics": ["spans"]},
        "logs": {"topics": ["texts"], "encoding": "text"},
    }
    # A topic has one encoding: the JSON topic is read by a second receiver.
    json_settings = {
        **GROUP_SETTINGS,
        "brokers": [tansu.bootstrap],
        "group_id": "bad-input-json",
        "logs": {"topics": ["json-logs"], "encoding": "json"},
    }
    async with (
        started("kafka_receiver", settings, {Signal.LOGS: logs_sink, Signal.TRACES: traces_sink}) as (_, telemetry),
        started("kafka_receiver", json_settings, {Signal.LOGS: json_sink}) as (_, json_telemetry),
    ):
        await eventually(lambda: logs_sink.items == 3 and json_sink.items == 1, what="the good messages arriving")
        await eventually(
            lambda: (
                telemetry.value(
                    "otelml_receiver_failed_requests_total", receiver="kafka", transport="kafka", reason="undecodable"
                )
                == 1
            ),
            what="the bad protobuf counted",
        )
        await eventually(
            lambda: (
                json_telemetry.value(
                    "otelml_receiver_failed_requests_total", receiver="kafka", transport="kafka", reason="undecodable"
                )
                == 3
            ),
            what="protobuf, an array and a too deep object on a JSON topic counted",
        )
        # Invalid UTF-8 in a text message is repaired, not refused (see otelml/utf8.py).
        assert telemetry.value("otelml_receiver_repaired_log_records_total", receiver="kafka", transport="kafka") == 1
        await asyncio.to_thread(produce, tansu.bootstrap, "texts", [b"after the bad ones"], 0)
        await eventually(lambda: logs_sink.items == 4, what="the receiver consuming on")
    assert traces_sink.items == 0
    assert sorted(r.body.string_value for r in logs_sink.records()) == [
        "after the bad ones",
        "also fine",
        "fine",
        "\ufffd\ufffd not UTF-8",
    ]
    assert any_value_to_python(json_sink.records()[0].body) == {"n": 1}
    warnings = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(warnings) == 4, "each bad message is logged once"
    assert any("topic spans partition 0 offset 0" in w for w in warnings)
    assert any("nested deeper" in w and "topic json-logs partition 0 offset 3" in w for w in warnings)
    assert await committed(tansu.bootstrap, "bad-input", {"spans": 1, "texts": 1}) == {("spans", 0): 1, ("texts", 0): 4}
    assert await committed(tansu.bootstrap, "bad-input-json", {"json-logs": 1}) == {("json-logs", 0): 4}


async def test_a_header_key_that_is_not_utf8_stops_the_receiver_loudly(tansu, kcat_environment, caplog):
    # A known limitation (README, Delivery): aiokafka refuses the record while parsing its batch and does
    # not say where it is, so it cannot be skipped alone; the receiver must not hang silently instead.
    subprocess.run(
        ["kcat", "-b", tansu.bootstrap, "-P", "-t", "texts", "-p", "0", "-H", b"bad\xffkey=v"],
        input=b"hello\n",
        env=kcat_environment,
        check=True,
        timeout=30,
    )
    settings = {**GROUP_SETTINGS, "brokers": [tansu.bootstrap], "group_id": "bad-header", "logs": {"topics": ["texts"]}}
    settings["logs"]["encoding"] = "text"
    host, sink = Host(), Sink()
    async with started("kafka_receiver", settings, {Signal.LOGS: sink}, host=host):
        await eventually(lambda: host.fatal_errors, what="the failure reported to the service")
    assert isinstance(host.fatal_errors[0], UnicodeDecodeError) and sink.items == 0
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("otelml")]) == 1


async def test_rebalance_finishes_in_flight_work_and_commits_before_revoke(tansu, caplog):
    caplog.set_level(logging.INFO, logger="otelml")
    await tansu.create_topic("orders", partitions=2)
    for partition in (0, 1):
        await asyncio.to_thread(
            produce,
            tansu.bootstrap,
            "orders",
            [numbered_logs(partition * 1000 + i, 1).SerializeToString() for i in range(10)],
            partition,
        )

    gate = asyncio.Event()
    first, second = GatedSink(gate), Sink()
    settings = {**GROUP_SETTINGS, "brokers": [tansu.bootstrap], "group_id": "rebalancing", "logs": {"topics": ["orders"]}}
    async with started("kafka_receiver", settings, {Signal.LOGS: first}):
        await eventually(lambda: first.held == 2, what="a batch of each partition held on the first member")
        async with started("kafka_receiver", settings, {Signal.LOGS: second}):
            await eventually(
                lambda: any("partitions revoked: orders[0], orders[1]" in r.getMessage() for r in caplog.records),
                what="the first member being asked to give up its partitions",
            )
            # The revocation waits for the blocked batches; let them through.
            gate.set()
            await eventually(lambda: first.items == 20, what="the in-flight batches finishing")
            await eventually(
                lambda: any("partitions assigned: orders[" in r.getMessage() for r in caplog.records[-20:]),
                what="the partitions being shared out again",
            )
            offsets = await committed(tansu.bootstrap, "rebalancing", {"orders": 2})
            assert offsets == {("orders", 0): 10, ("orders", 1): 10}, "committed before the partitions moved"
            for partition in (0, 1):
                await asyncio.to_thread(
                    produce,
                    tansu.bootstrap,
                    "orders",
                    [numbered_logs(partition * 1000 + i, 1).SerializeToString() for i in range(10, 20)],
                    partition,
                )
            await eventually(lambda: first.items + second.items == 40, what="new messages consumed by the group")
    delivered = sequence_numbers(first.records()) + sequence_numbers(second.records())
    assert sorted(delivered) == sorted(p * 1000 + i for p in (0, 1) for i in range(20)), "every record exactly once"
    assert second.items > 0, "the second member took over a partition"


async def test_receiver_and_exporter_start_before_the_broker_and_connect_when_it_comes(tmp_path, caplog):
    broker = TansuBroker(free_port(), tmp_path / "tansu.log")
    sink = Sink()
    exporter_settings = {
        "brokers": [broker.bootstrap],
        "logs": {"topic": "late"},
        "retry_on_failure": {"initial_interval": "200ms", "max_interval": "1s"},
    }
    receiver_settings = {**GROUP_SETTINGS, "brokers": [broker.bootstrap], "logs": {"topics": ["late"]}}
    try:
        async with (
            started("kafka_exporter", exporter_settings) as (exporter, exporter_telemetry),
            started("kafka_receiver", receiver_settings, {Signal.LOGS: sink}),
        ):
            await exporter.consume(numbered_logs(0, 5))
            await eventually(
                lambda: any(
                    "cannot reach the brokers" in r.getMessage() for r in caplog.records if r.name.startswith("otelml.receiver")
                ),
                what="the receiver failing to connect",
            )
            await broker.start()
            await broker.create_topic("late", partitions=1)
            await eventually(lambda: sink.items == 5, timeout=45, what="the records going through the broker once it is up")
    finally:
        await broker.stop()
    assert sequence_numbers(sink.records()) == list(range(5))
    assert exporter_telemetry.value("otelcol_exporter_sent_log_records_total", exporter="kafka") == 5
