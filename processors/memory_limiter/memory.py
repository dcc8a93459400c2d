"""How much memory the machine (or container) grants this process, and giving freed memory back.

The limit is read from ``/proc/meminfo`` and the cgroup file system; what the
process uses is :func:`otelml.process.resident_bytes`; freed heap goes back to
the system through :func:`otelml.allocator.trim_heap`.
"""

from __future__ import annotations

import gc
from pathlib import Path

from otelml.allocator import trim_heap

# cgroup v1 writes "no limit" as the largest page-aligned 64-bit number.
_UNLIMITED = 1 << 62


def total_memory_bytes() -> int:
    """Memory available to this process: physical memory, or the cgroup limit when lower."""
    total = _meminfo_total()
    limit = cgroup_limit_bytes()
    return min(total, limit) if limit else total


def _meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise OSError("/proc/meminfo has no MemTotal line")


def cgroup_limit_bytes(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int | None:
    """The memory limit of this process's cgroup (v2 or v1), or None when there is none."""
    candidates = []
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates.append(f"{root}{path.rstrip('/')}/memory.max")
        elif "memory" in controllers.split(","):
            candidates.append(f"{root}/memory{path.rstrip('/')}/memory.limit_in_bytes")
    # Inside a container the process's own cgroup is usually mounted at the root.
    candidates += [f"{root}/memory.max", f"{root}/memory/memory.limit_in_bytes"]
    for candidate in candidates:
        try:
            text = Path(candidate).read_text().strip()
        except OSError:
            continue
        if text == "max":
            return None
        if text.isdigit():
            return int(text) if int(text) < _UNLIMITED else None
    return None


def collect_garbage() -> None:
    """Free unreachable objects (a full, costlier collection), then trim the heap."""
    gc.collect()
    trim_heap()
