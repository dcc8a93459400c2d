"""glibc's memory allocator: keeping freed heap for the next batch, and giving it back on demand.

Both go through ``mallopt`` and ``malloc_trim`` of the C library; with another
C library (musl, macOS) neither exists and both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name is not None else None


_LIBC = _libc()
_mallopt = getattr(_LIBC, "mallopt", None)
_malloc_trim = getattr(_LIBC, "malloc_trim", None)


def keep_freed_heap(largest_block: int, kept: int) -> None:
    """Serve blocks under ``largest_block`` bytes from the heap and keep up to ``kept`` bytes of it freed.

    With glibc's adaptive defaults a freed block of a few megabytes goes back
    to the kernel, so a process that allocates and frees such blocks for
    every batch page-faults them in again each time.
    """
    if _mallopt is not None:
        _mallopt(_M_MMAP_THRESHOLD, largest_block)
        _mallopt(_M_TRIM_THRESHOLD, kept)


def trim_heap() -> None:
    """Give heap pages that hold no objects back to the system (glibc ``malloc_trim``; cheap).

    Freed memory otherwise stays with the allocator, so the RSS would not
    fall when a backlog drains.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)
