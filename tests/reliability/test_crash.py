"""kill -9 with a persistent sending queue: every acknowledged span arrives after the restart.

otelml (a subprocess) forwards OTLP/gRPC to a destination that is down. It
is killed with SIGKILL in the middle of a stream, restarted on the same
queue directory, killed again while it drains the backlog into the now
reachable destination, and restarted once more. Every span a client was
told was accepted must arrive; spans that were sent but not yet removed
from the queue when the process died arrive twice, and are counted.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.conftest import free_port, metric
from tests.reliability.faults import Client, Destination

pytestmark = pytest.mark.integration


def persistent_forwarding(destination: Destination) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:GRPC}"}}}},
        "exporters": {
            "otlp": {
                "endpoint": destination.endpoint,
                "tls": {"insecure": True},
                "timeout": "2s",
                "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms", "max_elapsed_time": "0s"},
                "sending_queue": {"storage": "file_storage", "num_consumers": 4, "queue_size": 10_000},
            }
        },
        "extensions": {"file_storage": {"directory": "${env:OUT}/queue", "create_directory": True}},
        "service": {
            "extensions": ["file_storage"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp"]}},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }


async def stream_until(client: Client, stop: asyncio.Event, requests_per_second: float = 40) -> None:
    """Send one request after another at a steady pace until ``stop`` is set."""
    while not stop.is_set():
        await client.send(timeout=5)
        await asyncio.sleep(1 / requests_per_second)


async def kill_while_streaming(otelml, client: Client, seconds: float) -> None:
    stop = asyncio.Event()
    stream = asyncio.create_task(stream_until(client, stop))
    await asyncio.sleep(seconds)
    await asyncio.to_thread(otelml.stop, signal.SIGKILL)
    await asyncio.sleep(0.5)  # requests in flight fail; none of them was acknowledged
    stop.set()
    await stream


async def test_sigkill_mid_stream_and_mid_drain_loses_nothing_acknowledged(otelml_process):
    destination = Destination(free_port(), delay=0.05)
    config = persistent_forwarding(destination)
    first = otelml_process(config)
    await asyncio.to_thread(first.start)
    async with Client(first.grpc_endpoint, spans_per_request=50) as client:
        await kill_while_streaming(first, client, seconds=3)
    acknowledged_before_crash = len(client.acknowledged)
    assert acknowledged_before_crash and client.outcomes["UNAVAILABLE"]

    second = otelml_process(config)
    await asyncio.to_thread(second.start)
    restored = metric(await asyncio.to_thread(second.metrics), "otelcol_exporter_queue_size", exporter="otlp", data_type="traces")
    client.grpc_endpoint = second.grpc_endpoint
    async with client:
        for _ in range(20):
            assert (await client.send()).accepted
    await destination.start()
    try:
        while len(destination.received) < len(client.acknowledged) // 3:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(second.stop, signal.SIGKILL)
        delivered_before_second_crash = len(destination.received)

        third = otelml_process(config)
        await asyncio.to_thread(third.start)
        missing = await destination.wait_for(client.acknowledged, timeout=60)
        samples = await asyncio.to_thread(third.metrics)
        assert await asyncio.to_thread(third.stop) == 0
    finally:
        await destination.stop()

    print(
        f"\ncrash: {acknowledged_before_crash} spans acknowledged before the first SIGKILL, {len(client.acknowledged)} in all; "
        f"{restored:.0f} batches waiting in the queue after the restart; {delivered_before_second_crash} delivered before the "
        f"second SIGKILL; missing {len(missing)}, duplicated {destination.duplicates()}"
    )
    assert restored > 0
    assert missing == set()
    assert metric(samples, "otelml_dropped_items_total") == 0
