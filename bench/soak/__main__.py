"""Soak: minutes of mixed load with injected faults, then an account of every span.

    .venv/bin/python -m bench.soak                 # 10 minutes
    .venv/bin/python -m bench.soak --minutes 2     # a shorter run

otelml runs as a subprocess: OTLP gRPC+HTTP -> memory_limiter -> otlp
exporter with a persistent queue (file_storage) -> a destination in this
process. A client streams uniquely numbered spans over both transports
while a schedule injects, in turn: destination outages, kill -9 and
restart, graceful restarts, load bursts, and kill -9 during an outage.
At the end the destination comes back for good, the backlog drains, and
the run prints what was sent, acknowledged, refused, received (with
duplicates), missing and dropped (by reason). It exits 1 when an
acknowledged span is missing.

Counters of otelml's own metrics are scraped every two seconds and summed
over its incarnations, since a killed process takes its counters with it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import OtelmlProcess, free_port
from tests.reliability.faults import Client, Destination, rss_bytes

MIB = 1 << 20
SPANS = 100
BASE_RATE = 30  # requests per second, alternating gRPC and HTTP
COUNTERS = (
    "otelcol_receiver_accepted_spans_total",
    "otelcol_exporter_sent_spans_total",
    "otelcol_processor_refused_spans_total",
    "otelcol_exporter_enqueue_failed_spans_total",
)


def soak_config(destination: Destination, limit_mib: int) -> dict:
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "${env:GRPC}"},
                    "http": {"endpoint": "${env:HTTP}", "max_concurrent_requests": 64},
                }
            }
        },
        "processors": {
            "memory_limiter": {"check_interval": "200ms", "limit_mib": limit_mib, "min_gc_interval_when_soft_limited": "2s"}
        },
        "exporters": {
            "otlp": {
                "endpoint": destination.endpoint,
                "tls": {"insecure": True},
                "timeout": "2s",
                "retry_on_failure": {"initial_interval": "200ms", "max_interval": "2s", "max_elapsed_time": "0s"},
                "sending_queue": {"storage": "file_storage", "num_consumers": 4, "queue_size": 20_000},
            }
        },
        "extensions": {
            "file_storage": {
                "directory": "${env:OUT}/queue",
                "create_directory": True,
                "compaction": {"on_start": True, "on_rebound": True},
            }
        },
        "service": {
            "extensions": ["file_storage"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["otlp"]}},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
            "shutdown_timeout": "10s",
        },
    }


class Soak:
    def __init__(self, workdir: Path, seconds: float, seed: int):
        self.workdir = workdir
        self.seconds = seconds
        self.random = random.Random(seed)
        self.destination = Destination(free_port(), delay=0.005)
        self.rate = BASE_RATE
        self.events: list[str] = []
        self.counters: list[dict] = [{}]  # one per otelml incarnation, the last scrape of each
        self.peak_rss = 0
        self.started = time.monotonic()
        self.running = True

    def note(self, event: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f}s {event}"
        self.events.append(line)
        print(line, flush=True)

    async def run(self) -> int:
        await self.destination.start()
        self.otelml = OtelmlProcess(soak_config(self.destination, 100_000), self.workdir)
        await asyncio.to_thread(self.otelml.start)
        idle = rss_bytes(self.otelml.process.pid) // MIB
        await asyncio.to_thread(self.otelml.stop)
        self.limit_mib = idle + 150
        self.otelml = OtelmlProcess(soak_config(self.destination, self.limit_mib), self.workdir)
        await asyncio.to_thread(self.otelml.start)
        self.note(f"otelml up (idle RSS {idle} MiB, limit_mib {self.limit_mib})")
        async with Client(self.otelml.grpc_endpoint, self.otelml.http_url, spans_per_request=SPANS) as self.client:
            watchers = [asyncio.create_task(self._scrape()), asyncio.create_task(self._watch_rss())]
            load = asyncio.create_task(self._load())
            await self._faults()
            self.running = False
            await load
            if not self.destination.up:
                await self.destination.start()
            self.note("load stopped; waiting for the backlog")
            missing = await self.destination.wait_for(self.client.acknowledged, timeout=300)
            await self._scrape_once()
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            code = await asyncio.to_thread(self.otelml.stop)
            self.note(f"otelml stopped with exit code {code}")
        await self.destination.stop()
        self.report(missing)
        return 1 if missing else 0

    async def _load(self) -> None:
        slots = asyncio.Semaphore(128)
        count = 0
        next_send = time.monotonic()
        tasks: set[asyncio.Task] = set()
        while self.running:
            await slots.acquire()
            task = asyncio.create_task(self.client.send(("grpc", "http")[count % 2], timeout=5))
            task.add_done_callback(lambda _: slots.release())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            count += 1
            next_send += 1 / self.rate
            await asyncio.sleep(max(0.0, next_send - time.monotonic()))
        await asyncio.gather(*tasks)

    async def _faults(self) -> None:
        schedule = [self._outage, self._kill_and_restart, self._burst, self._graceful_restart, self._kill_during_outage]
        end = self.started + self.seconds
        await asyncio.sleep(min(30, self.seconds / 10))
        turn = 0
        while time.monotonic() < end - 60:
            await schedule[turn % len(schedule)]()
            turn += 1
            await asyncio.sleep(self.random.uniform(10, 25))
        await asyncio.sleep(max(0.0, end - time.monotonic()))

    async def _outage(self) -> None:
        seconds = self.random.uniform(20, 40)
        self.note(f"destination down for {seconds:.0f}s")
        await self.destination.stop()
        await asyncio.sleep(seconds)
        await self.destination.start()
        self.note("destination back")

    async def _kill_and_restart(self) -> None:
        await self._kill()
        await asyncio.sleep(self.random.uniform(2, 5))
        await self._restart()

    async def _graceful_restart(self) -> None:
        self.note("SIGTERM")
        await self._scrape_once()
        await asyncio.to_thread(self.otelml.stop)
        self.counters.append({})
        await self._restart()

    async def _burst(self) -> None:
        seconds = self.random.uniform(10, 20)
        self.note(f"burst: 6x the rate for {seconds:.0f}s")
        self.rate = 6 * BASE_RATE
        await asyncio.sleep(seconds)
        self.rate = BASE_RATE
        self.note("burst over")

    async def _kill_during_outage(self) -> None:
        self.note("destination down")
        await self.destination.stop()
        await asyncio.sleep(self.random.uniform(5, 15))
        await self._kill()
        await asyncio.sleep(2)
        await self._restart()
        await asyncio.sleep(self.random.uniform(5, 15))
        await self.destination.start()
        self.note("destination back")

    async def _kill(self) -> None:
        await self._scrape_once()
        self.note("kill -9")
        await asyncio.to_thread(self.otelml.stop, signal.SIGKILL)
        self.counters.append({})

    async def _restart(self) -> None:
        await asyncio.to_thread(self.otelml.start, 60)
        self.note("otelml restarted")

    async def _scrape(self) -> None:
        while True:
            await asyncio.sleep(2)
            await self._scrape_once()

    async def _scrape_once(self) -> None:
        try:
            samples = await asyncio.to_thread(self.otelml.metrics)
        except OSError:
            return  # down between a kill and its restart
        current = {}
        for (name, labels), value in samples.items():
            if name in COUNTERS:
                current[name] = current.get(name, 0) + value
            elif name == "otelml_dropped_items_total":
                reason = dict(labels)["reason"]
                current[f"dropped:{reason}"] = current.get(f"dropped:{reason}", 0) + value
        self.counters[-1] = current

    async def _watch_rss(self) -> None:
        while True:
            process = self.otelml.process
            if process is not None and process.poll() is None:
                try:
                    self.peak_rss = max(self.peak_rss, rss_bytes(process.pid))
                except OSError:
                    pass
            await asyncio.sleep(0.05)

    def report(self, missing: set[int]) -> None:
        totals: collections.Counter = collections.Counter()
        for incarnation in self.counters:
            totals.update(incarnation)
        client, destination = self.client, self.destination
        refused = {k: v for k, v in client.outcomes.items() if k != "ok"}
        dropped = {k.split(":", 1)[1]: int(v) for k, v in totals.items() if k.startswith("dropped:")}
        print()
        print(f"soak: {time.monotonic() - self.started:.0f} s, {len(self.counters)} otelml incarnations")
        print(f"sent:          {client.sent} spans in {sum(client.outcomes.values())} requests")
        print(f"acknowledged:  {len(client.acknowledged)} spans ({client.outcomes['ok']} requests)")
        print(f"not accepted:  {refused} (requests; the client keeps these spans)")
        print(f"received:      {len(destination.received)} distinct spans, {destination.duplicates()} duplicates")
        print(f"missing:       {len(missing)} acknowledged spans never received")
        print(f"dropped:       {dropped or 'none'} (items, by reason, as otelml counted them)")
        print("otelml totals: " + ", ".join(f"{name} {int(totals[name])}" for name in COUNTERS))
        print(f"peak RSS:      {self.peak_rss / MIB:.0f} MiB (limit_mib {self.limit_mib})")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="where otelml's config, log and queue go (default: a new temporary folder)")
    arguments = parser.parse_args()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="otelml-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"soak for {arguments.minutes:g} min in {workdir}", flush=True)
    return asyncio.run(Soak(workdir, arguments.minutes * 60, arguments.seed).run())


if __name__ == "__main__":
    sys.exit(main())
