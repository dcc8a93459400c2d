"""The ``file_storage`` extension: durable stores in a directory, for persistent sending queues.

Each component asks for its own store by kind, ID and name, and gets one
file, named as the collector names them (``exporter_otlp__traces``), that
only the owner can read. Space left by deleted records is given back by
compaction, at start and/or after a backlog has drained ("rebound").
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from otelml.component import Component, ComponentID, CreateSettings, Host, Kind
from otelml.extensions.file_storage.config import FileStorageConfig, missing_directory
from otelml.extensions.file_storage.store import RecordStore, StorageError

MIB = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def store_file_name(kind: Kind, component_id: ComponentID, name: str) -> str:
    """``kind_type_name_client``, with characters unsafe in a file name escaped.

    >>> store_file_name(Kind.EXPORTER, ComponentID("otlp", "a/b"), "traces")
    'exporter_otlp_a~2fb_traces'
    """

    def escape(text: str) -> str:
        return _UNSAFE.sub(lambda match: f"~{ord(match.group()):x}", text)

    return "_".join((kind.value, component_id.type, escape(component_id.name), escape(name)))


class FileStorage(Component):
    def __init__(self, settings: CreateSettings, config: FileStorageConfig):
        self.config = config
        self.logger = settings.logger
        self.directory = Path(config.directory)
        self.scratch_directory = Path(config.compaction.directory or config.directory)
        self._stores: list[RecordStore] = []
        self._rebound_task: asyncio.Task | None = None

    async def start(self, host: Host) -> None:
        if self.config.create_directory:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for setting, directory in self.config.directories().items():
            if not directory.is_dir():  # removed since the config was validated
                raise StorageError(missing_directory(setting, directory))
        if self.config.compaction.on_rebound:
            self._rebound_task = asyncio.create_task(self._compact_on_rebound())

    async def shutdown(self) -> None:
        if self._rebound_task is not None:
            self._rebound_task.cancel()
            await asyncio.gather(self._rebound_task, return_exceptions=True)
            self._rebound_task = None
        stores, self._stores = self._stores, []
        for store in stores:
            await store.close()

    async def record_store(self, kind: Kind, component_id: ComponentID, name: str) -> RecordStore:
        """The store of one component (and name, e.g. a signal); its user closes it when done."""
        path = self.directory / store_file_name(kind, component_id, name)
        store = await RecordStore.open(path, self.config.fsync, self.config.timeout)
        if self.config.compaction.on_start:
            await self._compact(store)
        self._stores = [s for s in self._stores if not s.closed] + [store]
        return store

    async def _compact(self, store: RecordStore) -> None:
        before, _ = await store.sizes()
        await store.compact(self.scratch_directory)
        after, _ = await store.sizes()
        self.logger.info("compacted %s from %d to %d KiB", store.path.name, before // 1024, after // 1024)

    async def _compact_on_rebound(self) -> None:
        compaction = self.config.compaction
        while True:
            await asyncio.sleep(compaction.check_interval)
            for store in [s for s in self._stores if not s.closed]:
                try:
                    total, live = await store.sizes()
                    if (
                        total > compaction.rebound_needed_threshold_mib * MIB
                        and live < compaction.rebound_trigger_threshold_mib * MIB
                    ):
                        await self._compact(store)
                except StorageError as error:  # closed meanwhile, or a disk error the next check may not see
                    self.logger.warning("cannot compact %s: %s", store.path.name, error)
