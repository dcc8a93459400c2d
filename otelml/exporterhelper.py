"""What every exporter shares: timeout, retry with backoff, and a sending queue.

An exporter derives from :class:`QueuedRetryExporter` and implements
``export(batch)``, raising :class:`~otelml.errors.PermanentError` for data
the destination will never take and :class:`~otelml.errors.RetryableError`
(optionally with ``retry_after``) for data it may take later. The helper
then behaves as the collector's exporterhelper:

- ``timeout`` bounds each attempt;
- ``retry_on_failure`` retries retryable errors with exponential backoff,
  honouring the destination's Retry-After / RetryInfo, until
  ``max_elapsed_time`` (0 = forever);
- ``sending_queue`` accepts batches at once and sends them from
  ``num_consumers`` workers; a full queue refuses with a retryable error.

Every item is counted: sent, send-failed (with a drop reason), or
enqueue-failed.
"""

from __future__ import annotations

import asyncio
import random
import time

from pydantic import Field

from otelml.component import Component, CreateSettings, Host
from otelml.configmodel import ComponentConfig, Duration
from otelml.errors import PermanentError, RetryableError
from otelml.pdata import Batch, Signal, count_items


class RetryConfig(ComponentConfig):
    enabled: bool = True
    initial_interval: Duration = 5.0
    randomization_factor: float = Field(0.5, ge=0, le=1)
    multiplier: float = Field(1.5, ge=1)
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 300.0

    def validate(self) -> list[str]:
        problems = []
        if self.initial_interval <= 0:
            problems.append("initial_interval: must be positive")
        if self.max_interval < self.initial_interval:
            problems.append("max_interval: must not be shorter than initial_interval")
        if self.max_elapsed_time < 0:
            problems.append("max_elapsed_time: must not be negative (0 retries forever)")
        return problems


class QueueConfig(ComponentConfig):
    enabled: bool = True
    num_consumers: int = Field(10, ge=1)
    queue_size: int = Field(1000, ge=1)


class ExporterHelperConfig(ComponentConfig):
    """Settings shared by every exporter, mixed into its own config model."""

    timeout: Duration = 5.0
    retry_on_failure: RetryConfig = RetryConfig()
    sending_queue: QueueConfig = QueueConfig()

    def validate(self) -> list[str]:
        return ["timeout: must not be negative"] if self.timeout < 0 else []


class QueuedRetryExporter(Component):
    """Base of exporters; subclasses implement :meth:`export` and may override the hooks."""

    mutates_data = False
    signals: frozenset[Signal] = frozenset(Signal)

    def __init__(self, settings: CreateSettings, config: ExporterHelperConfig):
        self.settings = settings
        self.config = config
        self.logger = settings.logger
        self._name = str(settings.id)
        self._telemetry = settings.telemetry
        self._queues: dict[Signal, asyncio.Queue] = {}
        self._workers: list[asyncio.Task] = []
        self._started = False
        self._stopped = False

    # Hooks for subclasses.
    async def export(self, batch: Batch) -> None:
        raise NotImplementedError

    async def start_exporting(self, host: Host) -> None:
        """Open connections and files; called before any data arrives."""

    async def stop_exporting(self) -> None:
        """Flush and close; called after the queue drained."""

    def count_rejected(self, signal: Signal, count: int, message: str) -> None:
        """Count items the destination refused inside an accepted request (OTLP partial success)."""
        if count:
            self._telemetry.drop(self._name, signal, count, "rejected_by_destination")
            self.logger.warning("destination rejected %d %s: %s", count, signal.item_name, message)

    # Component lifecycle.
    async def start(self, host: Host) -> None:
        await self.start_exporting(host)
        if self.config.sending_queue.enabled:
            for signal in self.signals:
                queue = asyncio.Queue(self.config.sending_queue.queue_size)
                self._queues[signal] = queue
                self._telemetry.queue_capacity.labels(self._name, signal.value).set(queue.maxsize)
                self._telemetry.queue_size.labels(self._name, signal.value).set(0)
                self._workers += [asyncio.create_task(self._drain(signal, queue)) for _ in range(self.config.sending_queue.num_consumers)]
        self._started = True

    async def shutdown(self) -> None:
        """Send what is queued, then close. The service bounds this with its shutdown timeout."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        try:
            await asyncio.gather(*(queue.join() for queue in self._queues.values()))
        finally:
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._count_abandoned()
            await self.stop_exporting()

    # Data path.
    async def consume(self, batch: Batch) -> None:
        signal = Signal.of(batch)
        queue = self._queues.get(signal)
        if self._stopped:
            raise RetryableError(f"exporter {self._name} is shut down")
        if queue is None:
            await self._send(batch, signal, count_items(batch))
            return
        items = count_items(batch)
        try:
            queue.put_nowait((batch, items))
        except asyncio.QueueFull:
            self._telemetry.exporter_enqueue_failed(self._name, signal, items)
            self.logger.warning("sending queue is full, refusing %d %s", items, signal.item_name)
            raise RetryableError("sending queue is full", throttled=True) from None
        self._telemetry.queue_size.labels(self._name, signal.value).set(queue.qsize())

    async def _drain(self, signal: Signal, queue: asyncio.Queue) -> None:
        while True:
            batch, items = await queue.get()
            self._telemetry.queue_size.labels(self._name, signal.value).set(queue.qsize())
            try:
                await self._send(batch, signal, items)
            except asyncio.CancelledError:
                self._fail(signal, items, "shutdown", RuntimeError("sending was cut off by shutdown"))
                raise
            except Exception:
                pass  # _send counted and logged it; the queue has no one to return it to
            finally:
                queue.task_done()

    async def _send(self, batch: Batch, signal: Signal, items: int) -> None:
        retry = self.config.retry_on_failure
        deadline = time.monotonic() + retry.max_elapsed_time if retry.max_elapsed_time > 0 else float("inf")
        interval = retry.initial_interval
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._attempt(batch)
            except PermanentError as error:
                self._fail(signal, items, "permanent_error", error)
                raise
            except Exception as error:
                if not retry.enabled:
                    self._fail(signal, items, "retry_disabled", error)
                    raise
                wait = self._backoff(interval, error)
                if time.monotonic() + wait > deadline:
                    self._fail(signal, items, "retries_exhausted", error)
                    raise PermanentError(f"gave up after {attempt} attempts: {error}") from error
                self.logger.info("export of %d %s failed, retrying in %.2fs: %s", items, signal.item_name, wait, error)
                await asyncio.sleep(wait)
                interval = min(interval * retry.multiplier, retry.max_interval)
            else:
                self._telemetry.exporter_sent(self._name, signal, items)
                return

    async def _attempt(self, batch: Batch) -> None:
        if self.config.timeout <= 0:
            return await self.export(batch)
        try:
            async with asyncio.timeout(self.config.timeout):
                await self.export(batch)
        except TimeoutError:
            raise RetryableError(f"export timed out after {self.config.timeout}s") from None

    def _backoff(self, interval: float, error: Exception) -> float:
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return error.retry_after
        jitter = self.config.retry_on_failure.randomization_factor
        return interval * random.uniform(1 - jitter, 1 + jitter)

    def _fail(self, signal: Signal, items: int, reason: str, error: BaseException) -> None:
        self._telemetry.exporter_send_failed(self._name, signal, items)
        self._telemetry.drop(self._name, signal, items, reason)
        self.logger.error("dropping %d %s (%s): %s", items, signal.item_name, reason, error)

    def _count_abandoned(self) -> None:
        for signal, queue in self._queues.items():
            while not queue.empty():
                _, items = queue.get_nowait()
                self._fail(signal, items, "shutdown", RuntimeError("still queued at shutdown"))
