"""A durable first-in-first-out record store in one SQLite file.

SQLite (from the standard library) gives atomic, crash-safe appends and
deletes with little code: in WAL mode a committed insert is in the
operating system's hands once ``append`` returns, so it survives the
process being killed; with ``fsync`` every commit is also flushed to the
disk, so it survives a power loss. All calls run on one thread per store,
so that disk waits never block the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import os
import shutil
import sqlite3
import time
from pathlib import Path

OWNER_ONLY = 0o600
_SCHEMA = "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY AUTOINCREMENT, items INTEGER NOT NULL, data BLOB NOT NULL)"


class StorageError(OSError):
    """A store could not be opened, read or written."""


class RecordStore:
    """Records (``items`` count + bytes) kept in insertion order until deleted.

    Use :meth:`open`; every other method is a coroutine that runs the
    database call on the store's own thread.
    """

    def __init__(self, path: Path, fsync: bool):
        self.path = path
        self.fsync = fsync
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"store-{path.name}")

    @classmethod
    async def open(cls, path: Path, fsync: bool, lock_timeout: float) -> RecordStore:
        """Open (creating if needed) the store at ``path``; only one process may hold it."""
        store = cls(path, fsync)
        try:
            await store._run(store._open, lock_timeout)
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def closed(self) -> bool:
        return self._closed

    async def _run(self, function, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: {error}") from error
        except RuntimeError as error:  # the thread is gone: the store was closed
            raise StorageError(f"{self.path} is closed") from error

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError(f"{self.path} is closed")
        return self._db

    def _open(self, lock_timeout: float) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, OWNER_ONLY)
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageError(f"{self.path} is in use by another process") from None
                time.sleep(0.05)
        # Created owner-only before SQLite opens it: SQLite gives its -wal
        # and -shm files the same mode as the database file.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, OWNER_ONLY))
        os.chmod(self.path, OWNER_ONLY)
        self._connect()

    def _connect(self) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        self._db.execute(_SCHEMA)

    async def close(self) -> None:
        self._closed = True
        if self._db is not None or self._lock_fd is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    async def append(self, items: int, data: bytes) -> int:
        """Store one record durably; returns its key."""
        return await self._run(
            lambda: self._connection().execute("INSERT INTO records (items, data) VALUES (?, ?)", (items, data)).lastrowid
        )

    async def read(self, key: int) -> bytes:
        row = await self._run(lambda: self._connection().execute("SELECT data FROM records WHERE id = ?", (key,)).fetchone())
        if row is None:
            raise StorageError(f"{self.path}: record {key} is missing")
        return row[0]

    async def delete(self, key: int) -> None:
        await self._run(lambda: self._connection().execute("DELETE FROM records WHERE id = ?", (key,)))

    async def entries(self) -> list[tuple[int, int]]:
        """(key, items) of every record, oldest first."""
        return await self._run(lambda: self._connection().execute("SELECT id, items FROM records ORDER BY id").fetchall())

    async def sizes(self) -> tuple[int, int]:
        """(bytes the file takes, bytes its live records take)."""
        return await self._run(self._sizes)

    def _sizes(self) -> tuple[int, int]:
        db = self._connection()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
        return pages * page_size, (pages - free) * page_size

    async def compact(self, scratch_directory: Path) -> None:
        """Rewrite the file without its free pages, through a copy in ``scratch_directory``."""
        await self._run(self._compact, scratch_directory)

    def _compact(self, scratch_directory: Path) -> None:
        db = self._connection()
        scratch = scratch_directory / f"{self.path.name}.compacting"
        beside = self.path.with_name(self.path.name + ".compacted")
        try:
            # VACUUM INTO fills an empty file; creating it first keeps it owner-only.
            _create_owner_only(scratch)
            db.execute("VACUUM INTO ?", (str(scratch),))
            db.close()
            self._db = None
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size:
                return  # not checkpointed: the file alone is not the whole store
            # The final rename must stay within one file system to be atomic.
            compacted = scratch
            if scratch.parent.resolve() != self.path.parent.resolve():
                _create_owner_only(beside)
                shutil.copyfile(scratch, beside)
                compacted = beside
            os.replace(compacted, self.path)
        finally:
            for leftover in (scratch, beside):
                leftover.unlink(missing_ok=True)
            if self._db is None:
                self._connect()


def _create_owner_only(path: Path) -> None:
    """An empty file at ``path`` that only its owner can read, replacing any leftover."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, OWNER_ONLY))
