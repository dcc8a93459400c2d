"""The exporter helper's sending queue, kept in memory or in a storage extension.

A queue holds record keys in order; the records themselves (the batches)
live in a record keeper: :class:`MemoryRecords` (objects, lost when the
process stops) or :class:`PersistentRecords` (serialized protobuf in a
``file_storage`` store, written before ``put`` returns and deleted only
after the batch was sent or given up). Only the keys and item counts of a
persistent queue stay in memory; each batch is read back when it is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Protocol

from otelml.pdata import Batch, Signal, from_proto


class QueueFull(Exception):
    """The queue holds ``capacity`` batches already."""


@dataclasses.dataclass(frozen=True)
class Entry:
    key: int
    items: int


class Records(Protocol):
    persistent: bool

    async def append(self, batch: Batch, items: int) -> int: ...
    async def load(self, key: int) -> Batch: ...
    async def delete(self, key: int) -> None: ...
    async def entries(self) -> list[tuple[int, int]]: ...
    async def close(self) -> None: ...


class MemoryRecords:
    """Batches kept as objects: fast, and gone when the process stops."""

    persistent = False

    def __init__(self):
        self._batches: dict[int, Batch] = {}
        self._next_key = 0

    async def append(self, batch: Batch, items: int) -> int:
        self._next_key += 1
        self._batches[self._next_key] = batch
        return self._next_key

    async def load(self, key: int) -> Batch:
        return self._batches[key]

    async def delete(self, key: int) -> None:
        del self._batches[key]

    async def entries(self) -> list[tuple[int, int]]:
        return []

    async def close(self) -> None:
        self._batches.clear()


class PersistentRecords:
    """Batches serialized into a store of the ``file_storage`` extension: they outlive the process."""

    persistent = True

    def __init__(self, store, signal: Signal):
        self.store = store
        self.signal = signal

    async def append(self, batch: Batch, items: int) -> int:
        return await self.store.append(items, batch.SerializeToString())

    async def load(self, key: int) -> Batch:
        """The batch under ``key``; ``ValueError`` when the stored bytes are not one."""
        return from_proto(await self.store.read(key), self.signal)

    async def delete(self, key: int) -> None:
        await self.store.delete(key)

    async def entries(self) -> list[tuple[int, int]]:
        return await self.store.entries()

    async def close(self) -> None:
        await self.store.close()


class SendingQueue:
    """A bounded first-in-first-out queue of batches, with asyncio.Queue's join/done bookkeeping.

    ``capacity`` bounds the batches waiting to be sent; batches being sent
    no longer count, as in the collector.
    """

    def __init__(self, records: Records, capacity: int):
        self.records = records
        self.capacity = capacity
        self._keys: asyncio.Queue[Entry] = asyncio.Queue()
        self._reserved = 0  # puts that passed the capacity check and are writing
        self._sending: set[Entry] = set()  # taken by get() and not done yet

    @property
    def persistent(self) -> bool:
        return self.records.persistent

    def size(self) -> int:
        return self._keys.qsize()

    async def restore(self) -> int:
        """Queue what the records kept from before (persistent records only); returns the batches found."""
        entries = await self.records.entries()
        for key, items in entries:
            self._keys.put_nowait(Entry(key, items))
        return len(entries)

    async def put(self, batch: Batch, items: int) -> None:
        """Keep ``batch`` (durably, for persistent records); raises QueueFull when at capacity."""
        if self._keys.qsize() + self._reserved >= self.capacity:
            raise QueueFull()
        self._reserved += 1
        try:
            key = await self.records.append(batch, items)
        finally:
            self._reserved -= 1
        self._keys.put_nowait(Entry(key, items))

    async def get(self) -> Entry:
        """The oldest waiting entry; read its batch with :meth:`load`, then call :meth:`done`."""
        entry = await self._keys.get()
        self._sending.add(entry)
        return entry

    async def load(self, entry: Entry) -> Batch:
        return await self.records.load(entry.key)

    async def done(self, entry: Entry) -> None:
        """``entry`` was sent or given up: forget it."""
        self._sending.discard(entry)
        try:
            await self.records.delete(entry.key)
        finally:
            self._keys.task_done()

    async def join(self) -> None:
        """Wait until every entry put or restored is done."""
        await self._keys.join()

    def take_unsent(self) -> list[Entry]:
        """Remove and return the entries not done: those waiting and those whose sending was cut off."""
        unsent = sorted(self._sending, key=lambda entry: entry.key)
        self._sending.clear()
        while not self._keys.empty():
            unsent.append(self._keys.get_nowait())
        return unsent

    async def close(self) -> None:
        await self.records.close()
