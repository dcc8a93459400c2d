"""The memory_limiter processor: its limits, its decisions, and what senders see when it refuses."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.rpc import status_pb2

from otelml.errors import RetryableError
from otelml.pdata import Signal
from otelml.processors.memory_limiter import memory
from otelml.processors.memory_limiter.config import MIB, MemoryLimiterConfig
from otelml.processors.memory_limiter.processor import MEMORY_PER_ENCODED_BYTE, MemoryMonitor
from otelml.synthetic import make_trace_request
from tests.conftest import build_config
from tests.reliability.conftest import capture, receiver_address, running_service
from tests.reliability.faults import Client


def problems(**settings) -> list[str]:
    return MemoryLimiterConfig(**settings).validate_config()


def test_config_is_checked_as_the_collector_checks_it():
    assert problems(check_interval=1, limit_mib=100) == []
    assert problems(limit_mib=100) == ["check_interval: must be greater than zero (1s suits most loads)"]
    assert problems(check_interval=1) == ["limit_mib: set limit_mib or limit_percentage"]
    assert problems(check_interval=1, limit_mib=100, spike_limit_mib=100) == ["spike_limit_mib: must be smaller than limit_mib"]
    assert problems(check_interval=1, limit_percentage=101) == ["limit_percentage: must be at most 100"]
    assert problems(check_interval=1, limit_percentage=50, spike_limit_percentage=50) == [
        "spike_limit_percentage: must be smaller than limit_percentage"
    ]


def test_config_errors_carry_their_path():
    with pytest.raises(Exception) as caught:
        build_config(
            {
                "receivers": {"otlp": {"protocols": {"grpc": {}}}},
                "processors": {"memory_limiter": {"limit_mib": 10}},
                "exporters": {"debug": {}},
                "service": {
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["debug"]}}
                },
            }
        )
    assert "processors::memory_limiter::check_interval: must be greater than zero" in str(caught.value)


def test_limits_default_the_spike_to_a_fifth_and_prefer_mib_over_percentages():
    assert MemoryLimiterConfig(check_interval=1, limit_mib=100).limits(1 << 40) == (100 * MIB, 80 * MIB)
    assert MemoryLimiterConfig(check_interval=1, limit_mib=100, spike_limit_mib=30, limit_percentage=5).limits(1 << 40) == (
        100 * MIB,
        70 * MIB,
    )
    assert MemoryLimiterConfig(check_interval=1, limit_percentage=50).limits(1000 * MIB) == (500 * MIB, 400 * MIB)


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"cgroup": "0::/job\n", "fs/job/memory.max": "max\n"}, None),
        ({"cgroup": "0::/job\n", "fs/job/memory.max": "536870912\n"}, 536870912),
        ({"cgroup": "4:memory:/job\n", "fs/memory/job/memory.limit_in_bytes": "9223372036854771712\n"}, None),
        ({"cgroup": "4:memory,cpu:/job\n", "fs/memory/job/memory.limit_in_bytes": "268435456\n"}, 268435456),
        # In a container the cgroup path names the host's hierarchy; the limit is at the root.
        ({"cgroup": "0::/elsewhere\n", "fs/memory.max": "1073741824\n"}, 1073741824),
        ({"cgroup": "0::/\n"}, None),
    ],
)
def test_cgroup_limit_is_read_from_v1_or_v2(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert memory.cgroup_limit_bytes(str(tmp_path / "cgroup"), str(tmp_path / "fs")) == expected


def test_total_memory_is_the_machines_or_less():
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert 0 < memory.total_memory_bytes() <= int(meminfo["MemTotal"].split()[0]) * 1024


class FakeMemory:
    """Usage the test sets; trimming and collecting free what the test says they free."""

    def __init__(self, usage: int, freed_by_trim: int = 0, freed_by_collect: int = 0):
        self.usage = usage
        self.freed_by_trim = freed_by_trim
        self.freed_by_collect = freed_by_collect
        self.trims = 0
        self.collections = 0

    def trim(self):
        self.trims += 1
        self.usage -= self.freed_by_trim

    def collect(self):
        self.collections += 1
        self.usage -= self.freed_by_collect

    def monitor(self, **settings) -> MemoryMonitor:
        config = MemoryLimiterConfig(check_interval=1, limit_mib=100, spike_limit_mib=20, **settings)
        return MemoryMonitor(
            config, logging.getLogger("test"), read_usage=lambda: self.usage, trim=self.trim, collect=self.collect
        )


def test_below_the_soft_limit_nothing_is_refused_or_freed():
    fake = FakeMemory(79 * MIB)
    monitor = fake.monitor()
    monitor.check()
    assert not monitor.refusing and fake.trims == fake.collections == 0


def test_over_the_soft_limit_data_is_refused_and_collections_are_spaced():
    fake = FakeMemory(85 * MIB)
    monitor = fake.monitor()
    monitor.check()
    monitor.check()
    assert monitor.refusing
    assert fake.trims == 2
    assert fake.collections == 1  # min_gc_interval_when_soft_limited (10s) has not passed


def test_over_the_hard_limit_every_check_collects():
    fake = FakeMemory(120 * MIB)
    monitor = fake.monitor()
    monitor.check()
    monitor.check()
    assert monitor.refusing and fake.collections == 2


def test_memory_freed_during_the_check_lets_data_through():
    fake = FakeMemory(90 * MIB, freed_by_trim=15 * MIB)
    monitor = fake.monitor()
    monitor.check()
    assert not monitor.refusing and fake.collections == 0
    fake = FakeMemory(110 * MIB, freed_by_collect=40 * MIB)
    monitor = fake.monitor()
    monitor.check()
    assert not monitor.refusing and fake.collections == 1


def test_requests_admitted_between_checks_count_until_the_next_check():
    fake = FakeMemory(70 * MIB)
    monitor = fake.monitor()
    monitor.check()
    size = 1 * MIB  # encoded; takes MEMORY_PER_ENCODED_BYTE times as much once decoded
    admitted = 0
    while monitor.admit(size):
        admitted += 1
    # The soft limit is 80 MiB: what fits in the 10 MiB left is admitted, the rest refused until the next check.
    assert admitted == -(-10 // MEMORY_PER_ENCODED_BYTE)
    assert monitor.refusing
    monitor.check()  # the memory was not taken after all (the requests were refused downstream)
    assert not monitor.refusing and monitor.admit(size)


def test_data_flows_again_once_memory_falls():
    fake = FakeMemory(90 * MIB)
    monitor = fake.monitor()
    monitor.check()
    assert monitor.refusing
    fake.usage = 50 * MIB
    monitor.check()
    assert not monitor.refusing


def limited_pipeline() -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"memory_limiter": {"check_interval": "1h", "limit_mib": 100_000}},
        "exporters": {"capture": {}},
        "service": {
            "pipelines": {
                signal: {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["capture"]}
                for signal in ("traces", "logs")
            },
            "telemetry": {"metrics": {"readers": []}},
        },
    }


async def test_refusals_reach_otlp_clients_as_throttling_with_a_retry_delay_and_are_counted():
    async with running_service(limited_pipeline()) as service:
        traces, logs = (service.graph.processors[pipeline][0] for pipeline in sorted(service.graph.processors, key=str))
        assert traces.monitor is logs.monitor  # one check for every pipeline of one memory_limiter ID
        monitor = traces.monitor
        monitor.read_usage = lambda: monitor.soft_limit
        monitor.check()
        grpc_address, http_address = receiver_address(service, "grpc"), receiver_address(service, "http")
        async with Client(grpc_address, f"http://{http_address}", spans_per_request=10) as client:
            grpc_refusal = await client.send("grpc")
            http_refusal = await client.send("http")
            assert (grpc_refusal.status, http_refusal.status) == ("RESOURCE_EXHAUSTED", "http 429")
            assert grpc_refusal.retry_after >= 1 and http_refusal.retry_after >= 1
            assert capture(service).batches == []
            # Refused before they were read: counted as requests, not as spans (never decoded, never counted).
            for transport in ("grpc", "http"):
                assert (
                    service.telemetry.value(
                        "otelml_receiver_failed_requests_total", receiver="otlp", transport=transport, reason="throttled"
                    )
                    == 1
                )
            assert service.telemetry.value("otelcol_processor_refused_spans_total", processor="memory_limiter") == 0
            assert service.telemetry.value("otelml_dropped_items_total") == 0

            # Data decoded elsewhere (a broker receiver, a connector) is refused by the processor and counted there.
            traces_processor = next(
                chain[0] for pipeline, chain in service.graph.processors.items() if pipeline.signal is Signal.TRACES
            )
            with pytest.raises(RetryableError):
                await traces_processor.consume(make_trace_request(spans=7))
            assert service.telemetry.value("otelcol_processor_refused_spans_total", processor="memory_limiter") == 7

            monitor.read_usage = lambda: monitor.soft_limit // 2
            monitor.check()
            assert (await client.send("grpc")).accepted and (await client.send("http")).accepted
            assert capture(service).items() == 20


async def test_the_http_refusal_body_is_a_status_in_the_request_encoding():
    async with running_service(limited_pipeline()) as service:
        monitor = service.graph.processors[next(iter(service.graph.processors))][0].monitor
        monitor.read_usage = lambda: monitor.hard_limit
        monitor.collect = monitor.trim = lambda: None
        monitor.check()
        body = make_trace_request(spans=3).SerializeToString()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://{receiver_address(service, 'http')}/v1/traces",
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
            ) as response:
                assert response.status == 429
                assert int(response.headers["Retry-After"]) >= 1
                status = status_pb2.Status.FromString(await response.read())
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert "high memory usage" in status.message


async def test_the_shared_monitor_stops_with_the_last_pipeline():
    async with running_service(limited_pipeline()) as service:
        monitor = service.graph.processors[next(iter(service.graph.processors))][0].monitor
        assert monitor._task is not None
    assert monitor._task is None  # the service is gone; nothing keeps checking memory
