"""The ``batch`` processor: fewer, larger batches, with the collector's semantics.

Data is buffered until ``send_batch_size`` items are waiting (then the whole
buffer goes out) or ``timeout`` has passed since the last send (then
whatever is waiting goes out). ``send_batch_max_size`` caps each batch sent,
splitting larger ones. With ``timeout: 0`` nothing is buffered: each batch
is only split to the maximum size and passed on at once.

Like the collector's, it accepts data before sending it on, so a
downstream failure cannot reach the sender: it is counted as dropped with
its reason and logged. A full buffer makes ``consume`` wait (back-pressure).
"""

from __future__ import annotations

import asyncio

from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.errors import RetryableError
from otelml.pdata import Batch, Signal, count_items, merge, split
from otelml.processors.batch.config import BatchConfig
from otelml.processors.batch.metadata import SIZE_TRIGGER_SEND, TIMEOUT_TRIGGER_SEND


class BatchProcessor(Component):
    # Batches are merged into the first one waiting, so it must own them.
    mutates_data = True

    def __init__(self, settings: CreateSettings, config: BatchConfig, signal: Signal, next_consumer: Consumer):
        self.settings = settings
        self.config = config
        self.signal = signal
        self.next = next_consumer
        self.logger = settings.logger
        # With a timeout, batches go on from the sender task: downstream loses the pushing context (see otelml.partitions).
        self.detaches_context = config.timeout > 0
        self._buffer: list[Batch] = []
        self._items = 0
        # Beyond this many waiting items, consume() waits for a send.
        self._capacity = 2 * max(config.send_batch_size, config.send_batch_max_size, 1)
        self._wake = asyncio.Event()
        self._drained = asyncio.Condition()
        self._sender: asyncio.Task | None = None
        self._stopped = False
        # The collector's names for what made the processor send a batch.
        self._size_triggers = settings.telemetry.metric(SIZE_TRIGGER_SEND).labels(str(settings.id))
        self._timeout_triggers = settings.telemetry.metric(TIMEOUT_TRIGGER_SEND).labels(str(settings.id))

    async def start(self, host: Host) -> None:
        if self.config.timeout > 0:
            self._sender = asyncio.create_task(self._send_loop())

    async def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None
        await self._send_buffer()

    async def consume(self, batch: Batch) -> None:
        if self._stopped:
            raise RetryableError(f"processor {self.settings.id} is shut down")
        if self.config.timeout == 0:
            for piece in split(batch, self.config.send_batch_max_size):
                await self.next.consume(piece)
            return
        async with self._drained:
            await self._drained.wait_for(lambda: self._items < self._capacity or self._stopped)
        self._buffer.append(batch)
        self._items += count_items(batch)
        if self._items >= self.config.send_batch_size:
            self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that
                # arrives once the event is set, and shutdown then waits forever.
                async with asyncio.timeout(self.config.timeout):
                    await self._wake.wait()
                self._size_triggers.inc()
            except TimeoutError:
                if not self._buffer:
                    continue
                self._timeout_triggers.inc()
            self._wake.clear()
            await self._send_buffer()

    async def _send_buffer(self) -> None:
        if not self._buffer:
            return
        waiting, self._buffer, self._items = self._buffer, [], 0
        async with self._drained:
            self._drained.notify_all()
        for piece in split(merge(waiting), self.config.send_batch_max_size):
            try:
                await self.next.consume(piece)
            except Exception as error:
                items = count_items(piece)
                reason = "downstream_refused" if not isinstance(error, RetryableError) else "downstream_busy"
                self.settings.telemetry.drop(str(self.settings.id), self.signal, items, reason)
                self.logger.error("dropping %d %s the next component refused: %s", items, self.signal.item_name, error)
