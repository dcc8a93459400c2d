"""The ``file`` exporter: OTLP batches to a file, as the collector's fileexporter writes them.

- ``format: json``: one OTLP/JSON object per line (``{"resourceSpans": ...}``),
  which collector tools (and ``otelml replay``) read back.
- ``format: proto``: each batch as a 4-byte big-endian length followed by
  that many bytes of OTLP protobuf.
- ``compression: zstd``: each line or message is one zstd frame (for
  ``proto`` the length prefix counts the compressed bytes); a file of
  frames decompresses as a whole with ``zstd -d``.
- ``rotation``: when the file would grow past ``max_megabytes`` it is
  renamed ``<name>-<UTC timestamp><ext>`` and a new file started; only the
  newest ``max_backups`` rotated files are kept (0 keeps all).

Files are created owner-only (0600): they hold telemetry that may be sensitive.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import struct
from pathlib import Path
from typing import BinaryIO

import zstandard

from otelml.component import CreateSettings, Host
from otelml.errors import PermanentError
from otelml.exporterhelper import QueuedRetryExporter
from otelml.exporters.file.config import FileConfig
from otelml.pdata import Batch, to_json

MB = 1 << 20


class FileExporter(QueuedRetryExporter):
    config: FileConfig

    def __init__(self, settings: CreateSettings, config: FileConfig):
        super().__init__(settings, config)
        self.path = Path(config.path)
        self._file: BinaryIO | None = None
        self._size = 0
        self._flusher: asyncio.Task | None = None
        self._compressor = zstandard.ZstdCompressor() if config.compression == "zstd" else None

    async def start_exporting(self, host: Host) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open(append=self.config.append)
        if self.config.flush_interval > 0:
            self._flusher = asyncio.create_task(self._flush_periodically())

    async def stop_exporting(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._file is not None:
            self._file.close()
            self._file = None

    async def export(self, batch: Batch) -> None:
        if self._file is None:
            raise PermanentError(f"file exporter {self.settings.id} is not started")
        record = self._encode(batch)
        rotation = self.config.rotation
        if rotation is not None and self._size and self._size + len(record) > rotation.max_megabytes * MB:
            self._rotate()
        self._file.write(record)
        self._size += len(record)
        if not self.config.flush_interval:
            # Handed to the OS before accepting: a killed process loses nothing it acknowledged.
            self._file.flush()

    def _encode(self, batch: Batch) -> bytes:
        if self.config.format == "json":
            payload = to_json(batch) + b"\n"
            return self._compressor.compress(payload) if self._compressor else payload
        payload = batch.SerializeToString()
        if self._compressor:
            payload = self._compressor.compress(payload)
        return struct.pack(">I", len(payload)) + payload

    def _open(self, append: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        descriptor = os.open(self.path, flags, 0o600)
        self._file = os.fdopen(descriptor, "ab" if append else "wb", buffering=MB)
        self._size = self._file.tell() if append else 0

    def _rotate(self) -> None:
        assert self._file is not None and self.config.rotation is not None  # rotating an open file, as configured
        self._file.close()
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")
        self.path.rename(self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}"))
        keep = self.config.rotation.max_backups
        if keep:  # 0 keeps every backup, as in the collector
            # Only names in the shape written above: other files may share the prefix.
            backups = sorted(self.path.parent.glob(f"{self.path.stem}-????-??-??T??-??-??.??????{self.path.suffix}"))
            for old in backups[:-keep]:
                old.unlink()
        self._open(append=False)
        self.logger.info("rotated %s", self.path)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            if self._file is not None:
                self._file.flush()
