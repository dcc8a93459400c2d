"""Readings of this process from ``/proc``: resident memory, CPU time, uptime.

Each is a read of a small file or a system call (microseconds), cheap enough
for the memory limiter's frequent checks and for every scrape of the
internal metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def resident_bytes(pid: int | str = "self") -> int:
    """The resident set size (RSS) of the process ``pid`` (this one by default), in bytes.

    >>> resident_bytes() > 0
    True
    """
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def cpu_seconds() -> float:
    """User and system CPU time this process has used, in seconds (all its threads)."""
    times = os.times()
    return times.user + times.system


def uptime_seconds() -> float:
    """Seconds since this process started.

    >>> 0 < uptime_seconds() < 10 * 365 * 86400
    True
    """
    # Field 22 of /proc/self/stat is the start time in clock ticks after boot; the command name (field 2)
    # may hold spaces, so fields are counted from its closing parenthesis.
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    started = int(fields[19]) / _CLOCK_TICKS
    since_boot = float(Path("/proc/uptime").read_text().split()[0])
    return max(since_boot - started, 0.0)
