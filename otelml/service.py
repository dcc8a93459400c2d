"""The running service: builds the graph, starts and stops it, serves its own metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal as signals
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from otelml.allocator import keep_freed_heap
from otelml.component import ComponentID
from otelml.config import Config
from otelml.graph import Step, build
from otelml.httpserver import HTTPServer
from otelml.pdata import Signal
from otelml.registry import Registry
from otelml.telemetry import Level, Telemetry

log = logging.getLogger("otelml.service")


class StartError(Exception):
    """The service could not start; the message is the one line that says which part and why."""


class Service:
    """One collector instance.

    ``start`` brings components up exporters-first and receivers-last;
    ``shutdown`` takes them down in reverse, within ``shutdown_timeout``. Both
    are safe to call in any order and more than once.
    """

    def __init__(self, config: Config, registry: Registry | None = None):
        self.config = config
        self.telemetry = Telemetry(Level.parse(config.telemetry.metrics.level))
        self.graph = build(config, registry or Registry.default(), self.telemetry)
        self.state = "created"
        self._started: list[Step] = []
        self._fatal: asyncio.Event | None = None
        self._fatal_error: BaseException | None = None
        self._metrics_server: HTTPServer | None = None
        self.metrics_address: tuple[str, int] | None = None

    # Host interface, used by components.
    def get_extension(self, component_id: ComponentID):
        return self.graph.extensions.get(component_id)

    def components(self) -> list:
        return [step.component for step in self.graph.start_order()]

    def partition_owners(self, receiver_id: ComponentID, signal: Signal) -> list:
        return self.graph.partition_owners(receiver_id, signal)

    def healthy(self) -> bool:
        return self.state == "running" and self._fatal_error is None

    def report_fatal_error(self, component: str, error: BaseException) -> None:
        """A component that cannot go on stops the service, as in the collector."""
        log.error("fatal error in %s: %s", component, error)
        self._fatal_error = error
        if self._fatal is not None:
            self._fatal.set()

    async def start(self) -> None:
        """Start everything, or raise :class:`StartError` (logged as one line) with nothing left running."""
        self._fatal = asyncio.Event()
        self.state = "starting"
        try:
            await self._start_metrics()
        except OSError as error:
            log.error("cannot serve internal metrics: %s", error)
            await self.shutdown()
            raise StartError(f"service: cannot serve internal metrics: {error}") from error
        for step in self.graph.start_order():
            step.logger().info("starting%s", step.where())
            try:
                await step.component.start(self)
            except Exception as error:
                step.logger().error("cannot start%s: %s", step.where(), error)
                # What it started before failing (one of its servers) must not outlive it.
                self._started.append(step)
                await self.shutdown()
                raise StartError(f"{step.kind.value} {step.id}: cannot start{step.where()}: {error}") from error
            self._started.append(step)
        self.state = "running"
        tune_memory()
        log.info("everything is ready; begin running and processing data")

    async def shutdown(self) -> None:
        if self.state in ("stopping", "stopped"):
            return
        self.state = "stopping"
        deadline = time.monotonic() + self.config.shutdown_timeout
        log.info("shutting down")
        for step in reversed(self._started):
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    await step.component.shutdown()
            except TimeoutError:
                step.logger().error("shutdown did not finish within the shutdown timeout%s", step.where())
            except Exception as error:
                step.logger().error("shutdown failed%s: %s", step.where(), error)
        self._started.clear()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            self._metrics_server = None
        self.state = "stopped"
        log.info("shutdown complete")

    async def run(self) -> int:
        """Start, wait for SIGTERM/SIGINT or a fatal error, shut down; returns an exit code.

        A failed start has been logged in one line by :meth:`start`, and exits 1.
        """
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signals.SIGTERM, signals.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                await self.start()
            except StartError:
                return 1
            assert self._fatal is not None  # start() made it
            fatal_wait = asyncio.create_task(self._fatal.wait())
            stop_wait = asyncio.create_task(stop.wait())
            await asyncio.wait([fatal_wait, stop_wait], return_when=asyncio.FIRST_COMPLETED)
            fatal_wait.cancel()
            stop_wait.cancel()
            if stop.is_set():
                log.info("received a stop signal")
        finally:
            for sig in (signals.SIGTERM, signals.SIGINT):
                loop.remove_signal_handler(sig)
            await self.shutdown()
        return 1 if self._fatal_error is not None else 0

    async def _start_metrics(self) -> None:
        endpoint = self.config.telemetry.metrics.endpoint()
        if endpoint is None:
            return

        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.telemetry.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self._metrics_server = HTTPServer(app, f"{endpoint[0]}:{endpoint[1]}", None, log)
        self.metrics_address = await self._metrics_server.start()
        log.info("serving internal metrics on http://%s:%d/metrics", *self.metrics_address)


def tune_memory() -> None:
    """Keep the garbage collector and the memory allocator off the hot path.

    Batches are freed by reference counting; what the cyclic collector
    walks is long-lived state (modules, configs, per-key models), and with
    the default thresholds it did so often enough to take 15-25% of the
    anomaly processor's time. Objects alive once everything has started are
    moved out of its sight, and collections of the young generation are
    made rarer.

    Each batch also allocates and frees a few megabytes at once (protobuf
    arenas, numpy windows). glibc's adaptive defaults hand such blocks back
    to the kernel when they are freed, so the next batch faulted its pages
    in again: 12% of the anomaly processor's time. Blocks under 32 MiB now
    come from the heap, and up to 64 MiB of freed heap is kept for the next
    batch (the memory limiter gives it back when it finds the process over
    its soft limit). ``python -m bench.anomaly_speed`` calls this too, so
    that the processor is measured as it runs in the service.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)
    keep_freed_heap(largest_block=32 << 20, kept=64 << 20)
