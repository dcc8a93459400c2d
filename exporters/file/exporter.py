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

A write that fails (disk full, I/O error) is cut back to the end of the
last whole record, so the file never holds a torn or doubled record: with
``flush_interval: 0`` the batch is refused and retried; with buffering the
records wait in memory for the next flush, and what the last flush at
shutdown cannot write is counted as dropped (reason ``write_failed``).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import os
import struct
from pathlib import Path

import zstandard

from otelml.component import CreateSettings, Host
from otelml.exporterhelper import QueuedRetryExporter
from otelml.exporters.file.config import FileConfig
from otelml.pdata import Batch, Signal, count_items, to_json

MB = 1 << 20
# Buffered records are written out at once when they reach this size.
BUFFER_BYTES = MB


class FileExporter(QueuedRetryExporter):
    config: FileConfig

    def __init__(self, settings: CreateSettings, config: FileConfig):
        super().__init__(settings, config)
        self.path = Path(config.path)
        self._descriptor: int | None = None
        self._written = 0  # bytes of whole records in the file
        self._buffer: list[bytes] = []  # records accepted and not written yet
        self._buffered_bytes = 0
        self._buffered_items: collections.Counter[Signal] = collections.Counter()
        self._write_failing = False
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
        if self._descriptor is None:
            return
        try:
            self._write_buffer()
        except OSError as error:
            unwritten = {signal: items for signal, items in self._buffered_items.items() if items}
            for signal, items in unwritten.items():
                self._telemetry.drop(self._name, signal, items, "write_failed")
            lost = ", ".join(f"{items} {signal.item_name}" for signal, items in unwritten.items())
            self.logger.error("dropping %s (write_failed): the last flush of %s failed: %s", lost, self.path, error)
        finally:
            os.close(self._descriptor)
            self._descriptor = None

    async def export(self, batch: Batch) -> None:
        if self._descriptor is None:  # a rotation could not open the new file: try again
            self._open(append=True)
        record = self._encode(batch)
        rotation = self.config.rotation
        if rotation is not None and self._size() and self._size() + len(record) > rotation.max_megabytes * MB:
            self._rotate()
        signal, items = Signal.of(batch), count_items(batch)
        self._buffer.append(record)
        self._buffered_bytes += len(record)
        self._buffered_items[signal] += items
        # Without flush_interval the record is handed to the OS before accepting:
        # a killed process loses nothing it acknowledged.
        if not self.config.flush_interval or self._buffered_bytes >= BUFFER_BYTES:
            try:
                self._write_buffer()
            except OSError:
                # Refused, so it is not kept: the retry brings it again.
                self._buffer.pop()
                self._buffered_bytes -= len(record)
                self._buffered_items[signal] -= items
                raise

    def _size(self) -> int:
        return self._written + self._buffered_bytes

    def _write_buffer(self) -> None:
        """Write every buffered record, or none of them: a failed write is cut back."""
        assert self._descriptor is not None, "writing an open file"
        data = b"".join(self._buffer)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._descriptor, data[done:])
        except OSError:
            if done:
                os.ftruncate(self._descriptor, self._written)
            raise
        self._written += len(data)
        self._buffer.clear()
        self._buffered_bytes = 0
        self._buffered_items.clear()

    def _encode(self, batch: Batch) -> bytes:
        if self.config.format == "json":
            payload = to_json(batch) + b"\n"
            return self._compressor.compress(payload) if self._compressor else payload
        payload = batch.SerializeToString()
        if self._compressor:
            payload = self._compressor.compress(payload)
        return struct.pack(">I", len(payload)) + payload

    def _open(self, append: bool) -> None:
        # O_APPEND always: after a failed write is cut back, the next one starts where it was cut.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC)
        self._descriptor = os.open(self.path, flags, 0o600)
        self._written = os.fstat(self._descriptor).st_size

    def _rotate(self) -> None:
        assert self._descriptor is not None and self.config.rotation is not None  # rotating an open file, as configured
        self._write_buffer()
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")
        self.path.rename(self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}"))
        os.close(self._descriptor)
        self._descriptor = None
        self._open(append=False)  # when it fails, the next export opens the file again
        self.logger.info("rotated %s", self.path)
        keep = self.config.rotation.max_backups
        if keep:  # 0 keeps every backup, as in the collector
            # Only names in the shape written above: other files may share the prefix.
            backups = sorted(self.path.parent.glob(f"{self.path.stem}-????-??-??T??-??-??.??????{self.path.suffix}"))
            for old in backups[:-keep]:
                try:
                    old.unlink()
                except OSError as error:  # a backup left over is no reason to stop writing
                    self.logger.warning("cannot remove the old backup %s: %s", old.name, error)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            if not self._buffer:
                continue
            try:
                self._write_buffer()
            except OSError as error:
                # The records stay buffered for the next flush; a full buffer refuses new batches.
                if not self._write_failing:
                    self.logger.error("cannot write to %s, keeping what is buffered to try again: %s", self.path, error)
                self._write_failing = True
                continue
            if self._write_failing:
                self.logger.info("writing to %s again", self.path)
            self._write_failing = False
