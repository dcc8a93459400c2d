"""What every exporter shares: timeout, retry with backoff, and a sending queue.

An exporter derives from :class:`QueuedRetryExporter` and implements
``export(batch)``, raising :class:`~otelml.errors.PermanentError` for data
the destination will never take and :class:`~otelml.errors.RetryableError`
(optionally with ``retry_after``) for data it may take later, and returning
a :class:`PartialSuccess` when the destination took the request but refused
some of its items (OTLP ``partial_success``). The helper then behaves as the
collector's exporterhelper:

- ``timeout`` bounds each attempt;
- ``retry_on_failure`` retries retryable errors with exponential backoff,
  honouring the destination's Retry-After / RetryInfo, until
  ``max_elapsed_time`` (0 = forever);
- ``sending_queue`` accepts batches at once and sends them from
  ``num_consumers`` workers; a full queue refuses with a retryable error.
  With ``storage`` naming a ``file_storage`` extension, queued batches are
  written to disk before they are accepted and survive a crash or restart.

Every item is counted once: sent, send-failed (with a drop reason; the
items a partial success refused are not sent as well), or enqueue-failed. At shutdown the queue is drained within the service's
shutdown timeout; what is left is counted as dropped (reason ``shutdown``)
from a memory queue, and stays on disk for the next start in a persistent
one.
"""

from __future__ import annotations

import asyncio
import dataclasses

from pydantic import Field, field_validator

from otelml.component import Component, ComponentID, CreateSettings, Host, Kind
from otelml.configmodel import ComponentConfig, Duration
from otelml.configretry import Backoff, RetryConfig
from otelml.errors import PermanentError, RetryableError
from otelml.pdata import Batch, Signal, count_items
from otelml.sendingqueue import Entry, MemoryRecords, PersistentRecords, QueueFull, SendingQueue
from otelml.telemetry import EXPORTER_QUEUE_CAPACITY, EXPORTER_QUEUE_SIZE


class QueueConfig(ComponentConfig):
    enabled: bool = True
    num_consumers: int = Field(10, ge=1)
    queue_size: int = Field(1000, ge=1)
    # A storage extension (file_storage/NAME) that makes the queue persistent.
    storage: str | None = None

    @field_validator("storage")
    @classmethod
    def _check_storage(cls, value: str | None) -> str | None:
        if value is not None:
            ComponentID.parse(value)
        return value

    def extension_references(self) -> list[tuple[str, str]]:
        return [("storage", self.storage)] if self.storage is not None else []


class ExporterHelperConfig(ComponentConfig):
    """Settings shared by every exporter, mixed into its own config model."""

    timeout: Duration = 5.0
    retry_on_failure: RetryConfig = RetryConfig()
    sending_queue: QueueConfig = QueueConfig()

    def validate_config(self) -> list[str]:
        return ["timeout: must not be negative"] if self.timeout < 0 else []


@dataclasses.dataclass(frozen=True)
class PartialSuccess:
    """The destination took a request but refused ``rejected`` of its items for good, saying why in ``message``.

    ``rejected`` 0 with a ``message`` is a warning: everything was taken.
    ``reason`` labels the refused items in ``otelml_dropped_items``.
    """

    rejected: int
    message: str
    reason: str = "rejected_by_destination"


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
        self._queues: dict[Signal, SendingQueue] = {}
        self._workers: list[asyncio.Task] = []
        self._started = False
        self._stopped = False

    # Hooks for subclasses.
    async def export(self, batch: Batch) -> PartialSuccess | None:
        raise NotImplementedError

    async def start_exporting(self, host: Host) -> None:
        """Open connections and files; called before any data arrives."""

    async def stop_exporting(self) -> None:
        """Flush and close; called after the queue drained."""

    # Component lifecycle.
    async def start(self, host: Host) -> None:
        await self.start_exporting(host)
        settings = self.config.sending_queue
        try:
            for signal in self.signals if settings.enabled else ():
                queue = SendingQueue(await self._records(host, signal), settings.queue_size)
                self._queues[signal] = queue
                restored = await queue.restore()
                if restored:
                    self.logger.info("restored %d queued %s batches from %s", restored, signal.value, settings.storage)
                self._telemetry.metric(EXPORTER_QUEUE_CAPACITY).labels(self._name, signal.value).set(queue.capacity)
                self._show_size(signal, queue)
                self._workers += [asyncio.create_task(self._drain(signal, queue)) for _ in range(settings.num_consumers)]
        except BaseException:
            await self._close_queues()
            await self.stop_exporting()
            raise
        self._started = True

    async def _records(self, host: Host, signal: Signal):
        storage = self.config.sending_queue.storage
        if storage is None:
            return MemoryRecords()
        extension = host.get_extension(ComponentID.parse(storage))
        if not hasattr(extension, "record_store"):
            raise ValueError(f'sending_queue::storage: "{storage}" is not an enabled storage extension')
        return PersistentRecords(await extension.record_store(Kind.EXPORTER, self.settings.id, signal.value), signal)

    async def shutdown(self) -> None:
        """Send what is queued, then close. The service bounds this with its shutdown timeout."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        try:
            await asyncio.gather(*(queue.join() for queue in self._queues.values()))
        finally:
            await self._close_queues()
            await self.stop_exporting()

    async def _close_queues(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for signal, queue in self._queues.items():
            self._abandon(signal, queue)
            self._show_size(signal, queue)
            await queue.close()

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
            await queue.put(batch, items)
        except QueueFull:
            self._telemetry.exporter_enqueue_failed(self._name, signal, items)
            self.logger.warning("sending queue is full, refusing %d %s", items, signal.item_name)
            raise RetryableError("sending queue is full", throttled=True) from None
        except OSError as error:  # the persistent queue cannot write: the sender keeps the data
            self._telemetry.exporter_enqueue_failed(self._name, signal, items)
            self.logger.error("cannot queue %d %s: %s", items, signal.item_name, error)
            raise RetryableError(f"cannot queue the data: {error}") from None
        self._show_size(signal, queue)

    def _show_size(self, signal: Signal, queue: SendingQueue) -> None:
        self._telemetry.metric(EXPORTER_QUEUE_SIZE).labels(self._name, signal.value).set(queue.size())

    async def _drain(self, signal: Signal, queue: SendingQueue) -> None:
        while True:
            entry = await queue.get()
            self._show_size(signal, queue)
            await self._send_entry(signal, queue, entry)
            try:
                await queue.done(entry)
            except OSError as error:
                self.logger.error(
                    "cannot remove a batch from the persistent queue; it may be sent again after a restart: %s", error
                )

    async def _send_entry(self, signal: Signal, queue: SendingQueue, entry: Entry) -> None:
        """Send one queued batch; every outcome but shutdown is final and counted."""
        try:
            batch = await queue.load(entry)
        except (ValueError, OSError) as error:  # a stored record that cannot be read back
            self._fail(signal, entry.items, "unreadable", error)
            return
        try:
            await self._send(batch, signal, entry.items)
        except Exception:
            pass  # _send counted and logged it; the queue has no one to return it to
        # Cut off by shutdown (CancelledError), the entry is not done: _abandon accounts for it.

    async def _send(self, batch: Batch, signal: Signal, items: int) -> None:
        retry = self.config.retry_on_failure
        backoff = Backoff(retry)
        attempt = 0
        while True:
            attempt += 1
            try:
                partial_success = await self._attempt(batch)
            except PermanentError as error:
                self._fail(signal, items, "permanent_error", error)
                raise
            except Exception as error:
                if not retry.enabled:
                    self._fail(signal, items, "retry_disabled", error)
                    raise
                wait = backoff.next_wait(error.retry_after if isinstance(error, RetryableError) else None)
                if wait is None:
                    self._fail(signal, items, "retries_exhausted", error)
                    # Not permanent, as in the collector: a client that retries may
                    # find the destination back.
                    raise RetryableError(f"gave up after {attempt} attempts: {error}") from error
                self.logger.info("export of %d %s failed, retrying in %.2fs: %s", items, signal.item_name, wait, error)
                await asyncio.sleep(wait)
            else:
                self._count_sent(signal, items, partial_success)
                return

    async def _attempt(self, batch: Batch) -> PartialSuccess | None:
        if self.config.timeout <= 0:
            return await self.export(batch)
        try:
            async with asyncio.timeout(self.config.timeout):
                return await self.export(batch)
        except TimeoutError:
            raise RetryableError(f"export timed out after {self.config.timeout}s") from None

    def _count_sent(self, signal: Signal, items: int, partial_success: PartialSuccess | None) -> None:
        """Count a request the destination took: its rejected items are failed, never sent as well.

        A partial success is final, as the OTLP specification says: sending the
        rejected items again would be rejected again.
        """
        if partial_success is None:
            self._telemetry.exporter_sent(self._name, signal, items)
            return
        # A server may claim more than it was sent; counters cannot go down.
        rejected = min(partial_success.rejected, items)
        self._telemetry.exporter_sent(self._name, signal, items - rejected)
        if rejected:
            why = f"the other {items - rejected} of {items} were sent; {partial_success.message}"
            self._fail(signal, rejected, partial_success.reason, why)
        elif partial_success.message:
            self.logger.warning("destination took all %d %s with a warning: %s", items, signal.item_name, partial_success.message)

    def _fail(self, signal: Signal, items: int, reason: str, error: BaseException | str) -> None:
        self._telemetry.exporter_send_failed(self._name, signal, items)
        self._telemetry.drop(self._name, signal, items, reason)
        self.logger.error("dropping %d %s (%s): %s", items, signal.item_name, reason, error)

    def _abandon(self, signal: Signal, queue: SendingQueue) -> None:
        """Account for what shutdown left unsent, in one line: dropped from memory, kept on disk."""
        unsent = queue.take_unsent()
        if not unsent:
            return
        items = sum(entry.items for entry in unsent)
        if queue.persistent:
            self.logger.info(
                "%d %s in %d batches stay in the persistent queue, to be sent after the next start",
                items,
                signal.item_name,
                len(unsent),
            )
            return
        self._fail(signal, items, "shutdown", f"{len(unsent)} batches were still queued or being sent at shutdown")
