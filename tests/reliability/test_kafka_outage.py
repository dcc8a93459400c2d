"""A Kafka broker outage with a persistent sending queue, and kill -9 in the middle of it.

The kafka exporter's own outage test (tests/kafka) covers the in-memory
queue: what it holds is delivered, what overflows is refused. Here the
queue is on disk: otelml acknowledges spans while the broker is away, is
killed with SIGKILL, restarts, and once the broker is back every
acknowledged span is in the topic. The broker (tansu) keeps its data in
memory and loses it when stopped, so what arrived before the outage is
read back before it; and it acknowledges (and drops) writes to a topic it
lost, so clients reach it through a gate that opens again only once the
topic is back.
"""

from __future__ import annotations

import asyncio
import collections
import signal

import pytest

from otelml import pdata
from otelml.pdata import Signal
from tests.conftest import free_port, metric
from tests.kafka.conftest import GatedProxy, TansuBroker
from tests.kafka.support import read_topic
from tests.reliability.faults import Client, span_numbers

pytestmark = pytest.mark.integration

TOPIC = "spans"


def otlp_to_kafka(bootstrap: str) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:GRPC}"}}}},
        "exporters": {
            "kafka": {
                "brokers": [bootstrap],
                "traces": {"topic": TOPIC, "encoding": "otlp_proto"},
                "timeout": "2s",
                "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms", "max_elapsed_time": "0s"},
                "sending_queue": {"storage": "file_storage", "num_consumers": 2},
            }
        },
        "extensions": {"file_storage": {"directory": "${env:OUT}/queue", "create_directory": True}},
        "service": {
            "extensions": ["file_storage"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["kafka"]}},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }


async def spans_in_topic(bootstrap: str, messages: int, settle: float) -> collections.Counter:
    read = await asyncio.to_thread(read_topic, bootstrap, TOPIC, messages, 60, settle)
    return collections.Counter(n for message in read for n in span_numbers(pdata.from_proto(message.value(), Signal.TRACES)))


async def send(client: Client, requests: int) -> None:
    for _ in range(requests):
        assert (await client.send()).accepted


async def test_broker_outage_and_sigkill_lose_nothing_acknowledged(tmp_path, otelml_process):
    gate = GatedProxy(free_port(), free_port())
    broker = TansuBroker(gate.target_port, tmp_path / "tansu.log", advertised_port=gate.port)
    await gate.start()
    await broker.start()
    try:
        await broker.create_topic(TOPIC, partitions=1)
        config = otlp_to_kafka(broker.bootstrap)
        first = otelml_process(config)
        await asyncio.to_thread(first.start)
        async with Client(first.grpc_endpoint, spans_per_request=20) as client:
            await send(client, 5)
            before_outage = await spans_in_topic(broker.bootstrap, 5, settle=0.5)
            assert set(before_outage) == client.acknowledged

            gate.close()
            await broker.stop()
            await send(client, 20)  # acknowledged once on disk
        await asyncio.to_thread(first.stop, signal.SIGKILL)

        second = otelml_process(config)
        await asyncio.to_thread(second.start)
        queued = metric(
            await asyncio.to_thread(second.metrics), "otelcol_exporter_queue_size", exporter="kafka", data_type="traces"
        )
        client.grpc_endpoint = second.grpc_endpoint
        async with client:
            await send(client, 5)
        await broker.start()
        await broker.create_topic(TOPIC, partitions=1)
        gate.open()
        during_outage = client.acknowledged - set(before_outage)
        after_outage = await spans_in_topic(broker.bootstrap, len(during_outage) // 20, settle=2.0)
        samples = await asyncio.to_thread(second.metrics)
        await asyncio.to_thread(second.stop)
    finally:
        await broker.stop()
        await gate.stop()

    duplicates = sum(count - 1 for count in after_outage.values())
    print(
        f"\nkafka outage with a persistent queue and kill -9: {len(during_outage)} spans acknowledged while the broker was away, "
        f"{queued:.0f} batches restored after the kill, {len(set(after_outage) & during_outage)} delivered, {duplicates} duplicated"
    )
    assert queued > 0
    assert during_outage <= set(after_outage)
    assert metric(samples, "otelml_dropped_items_total") == 0
