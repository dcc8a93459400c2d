"""A flood against memory_limiter: the RSS stays under limit_mib, clients are told to retry, nothing acknowledged is lost.

otelml runs as a subprocess: OTLP gRPC -> memory_limiter (first) -> otlp
exporter whose destination is down, with a large sending queue and no retry
time limit, so that accepted data piles up in memory. Six clients send
1000-span requests back to back, without waiting, for ``FLOOD_SECONDS``.
Afterwards the destination comes up and every span otelml acknowledged must
arrive there.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.conftest import free_port, metric
from tests.reliability.faults import Client, Destination
from tests.reliability.test_overload import PeakRSS

pytestmark = pytest.mark.integration

MIB = 1 << 20
FLOOD_SECONDS = float(os.environ.get("OTELML_FLOOD_SECONDS", 25))
STREAMS = 6
SPANS = 1000  # per request
LIMIT_MIB = 300


def flood_config(destination_port: int) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:GRPC}"}}}},
        "processors": {"memory_limiter": {"check_interval": "100ms", "limit_mib": LIMIT_MIB, "spike_limit_mib": 60}},
        "exporters": {
            "otlp": {
                "endpoint": f"127.0.0.1:{destination_port}",
                "tls": {"insecure": True},
                "timeout": "2s",
                "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms", "max_elapsed_time": "0s"},
                "sending_queue": {"num_consumers": 4, "queue_size": 100_000},
            }
        },
        "service": {
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["otlp"]}},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }


async def flood(client: Client, seconds: float) -> None:
    async def stream() -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await client.send("grpc", timeout=30)

    await asyncio.gather(*(stream() for _ in range(STREAMS)))


async def test_a_flood_is_held_under_limit_mib_with_clients_told_to_retry_and_nothing_acknowledged_lost(otelml_process):
    destination_port = free_port()
    otelml = otelml_process(flood_config(destination_port))
    await asyncio.to_thread(otelml.start)
    rss = PeakRSS(otelml.process.pid)
    destination = Destination(port=destination_port)
    try:
        async with Client(otelml.grpc_endpoint, spans_per_request=SPANS) as client:
            started = time.monotonic()
            await flood(client, FLOOD_SECONDS)
            elapsed = time.monotonic() - started
            peak = await rss.stop()
            samples = await asyncio.to_thread(otelml.metrics)
            await destination.start()
            missing = await destination.wait_for(client.acknowledged, timeout=180)
        await asyncio.to_thread(otelml.stop)
    finally:
        await destination.stop()
    print(
        f"\nflood: {STREAMS} gRPC streams of {SPANS}-span requests for {elapsed:.0f} s: offered {client.sent / elapsed:.0f} spans/s, "
        f"outcomes {dict(client.outcomes)}; acknowledged {len(client.acknowledged)} spans, missing {len(missing)}; "
        f"peak RSS {peak / MIB:.0f} MiB (limit_mib {LIMIT_MIB})"
    )
    assert peak < LIMIT_MIB * MIB
    assert set(client.outcomes) == {"ok", "RESOURCE_EXHAUSTED"}
    assert all(delay is not None and delay >= 1 for delay in client.retry_delays)
    assert client.acknowledged and missing == set()
    assert metric(samples, "otelml_dropped_items_total") == 0
