"""The ``memory_limiter`` processor: refuse data while the process uses too much memory.

Every ``check_interval`` the process RSS is compared with two limits, as
in the collector. Above the soft limit (``limit - spike_limit``) every
batch is refused with a throttling :class:`~otelml.errors.RetryableError`:
OTLP clients get RESOURCE_EXHAUSTED with RetryInfo or HTTP 429 with
Retry-After, broker receivers pause and leave messages unacknowledged.
The data is not lost, its sender keeps it, so it is counted as refused,
not dropped. Over the soft limit, freed heap pages are returned to the
system at each check (else the RSS would not fall as a backlog drains) and
a garbage collection is forced at most every
``min_gc_interval_when_soft_limited``; over the hard limit, at most every
``min_gc_interval_when_hard_limited`` (default: at each check). Data flows
again once the RSS is back under the soft limit.

All pipelines that list the same ``memory_limiter`` ID share one monitor,
so memory is checked (and garbage collected) once per interval, not once
per pipeline.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

from otelml import process
from otelml.component import Component, ComponentID, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.errors import RetryableError
from otelml.pdata import Batch, Signal, count_items
from otelml.processors.memory_limiter import memory
from otelml.processors.memory_limiter.config import MIB, MemoryLimiterConfig
from otelml.processors.memory_limiter.metadata import REFUSED

# A sender asked to come back sooner than the next check would only be refused again.
MIN_RETRY_AFTER = 1.0
# Memory an OTLP request takes once decoded, per byte of its encoding (protobuf's upb runtime, measured on
# spans: 3.8), and the encoded bytes held while it decodes: what an admitted request adds until the next check.
MEMORY_PER_ENCODED_BYTE = 5


class MemoryMonitor:
    """Measures memory and decides whether data must be refused.

    Parameters
    ----------
    config
        The limits and how often to check them.
    logger
        Where limit crossings are reported.
    read_usage
        Returns the process's memory use in bytes (the RSS by default).
    trim
        Returns freed memory to the system, cheaply; called at each check over the soft limit.
    collect
        Frees unreachable objects (a full garbage collection); called at most
        every ``min_gc_interval_when_soft_limited`` / ``..._hard_limited``.
    total_memory
        Bytes available to the process, for the percentage limits.
    """

    def __init__(
        self,
        config: MemoryLimiterConfig,
        logger,
        read_usage: Callable[[], int] = process.resident_bytes,
        trim: Callable[[], None] = memory.trim_heap,
        collect: Callable[[], None] = memory.collect_garbage,
        total_memory: Callable[[], int] = memory.total_memory_bytes,
    ):
        self.config = config
        self.logger = logger
        self.read_usage = read_usage
        self.trim = trim
        self.collect = collect
        self.hard_limit, self.soft_limit = config.limits(0 if config.limit_mib else total_memory())
        self._measured = 0  # the RSS at the last check
        self._admitted = 0  # bytes that requests admitted since then will take
        self._over_soft_limit = False
        self._last_collection = float("-inf")
        self._users = 0
        self._task: asyncio.Task | None = None

    def check(self) -> None:
        """Measure once; free memory when over the soft limit; refuse while still over it."""
        usage = self.read_usage()
        if usage >= self.soft_limit:
            self.trim()
            usage = self.read_usage()
        if usage >= self.soft_limit:
            hard = usage >= self.hard_limit
            interval = self.config.min_gc_interval_when_hard_limited if hard else self.config.min_gc_interval_when_soft_limited
            if time.monotonic() - self._last_collection >= interval:
                self.collect()
                self._last_collection = time.monotonic()
                usage = self.read_usage()
        refusing = usage >= self.soft_limit
        if refusing and not self._over_soft_limit:
            self.logger.warning(
                "memory usage %d MiB is above the soft limit of %d MiB; refusing data", usage // MIB, self.soft_limit // MIB
            )
        elif self._over_soft_limit and not refusing:
            self.logger.info("memory usage %d MiB is back under the soft limit; accepting data", usage // MIB)
        self._over_soft_limit = refusing
        self._measured, self._admitted = usage, 0

    @property
    def refusing(self) -> bool:
        """Over the soft limit at the last check, or by the requests admitted since."""
        return self._over_soft_limit or self._measured + self._admitted >= self.soft_limit

    def admit(self, size: int) -> bool:
        """Whether a request of ``size`` encoded bytes may come in; if so, it counts until the next check.

        Between two checks the RSS is not measured, and a flood can bring in
        far more than ``spike_limit_mib``: admitted requests are added to the
        last measurement, as the memory they will take once decoded.
        """
        if self.refusing:
            return False
        self._admitted += size * MEMORY_PER_ENCODED_BYTE
        return True

    def acquire(self) -> None:
        """One more processor relies on this monitor; the first starts the checks."""
        self._users += 1
        if self._task is None:
            self.logger.info(
                "memory limits: hard %d MiB, soft %d MiB, checked every %gs",
                self.hard_limit // MIB,
                self.soft_limit // MIB,
                self.config.check_interval,
            )
            self.check()
            self._task = asyncio.create_task(self._check_loop())

    async def release_user(self) -> None:
        """One processor less; the last one stops the checks."""
        self._users -= 1
        if self._users == 0 and self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval)
            try:
                self.check()
            except OSError as error:  # /proc unreadable: keep the last decision
                self.logger.error("cannot measure memory usage: %s", error)


# One monitor per memory_limiter ID of each service (a service is identified by its telemetry).
_monitors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_monitor(settings: CreateSettings, config: MemoryLimiterConfig) -> MemoryMonitor:
    by_id: dict[ComponentID, MemoryMonitor] = _monitors.setdefault(settings.telemetry, {})
    if settings.id not in by_id:
        by_id[settings.id] = MemoryMonitor(config, settings.logger)
    return by_id[settings.id]


class MemoryLimiterProcessor(Component):
    mutates_data = False

    def __init__(self, settings: CreateSettings, config: MemoryLimiterConfig, signal: Signal, next_consumer: Consumer):
        self.settings = settings
        self.config = config
        self.signal = signal
        self.next = next_consumer
        self.monitor = shared_monitor(settings, config)
        self.retry_after = max(config.check_interval, MIN_RETRY_AFTER)
        self._refused = settings.telemetry.metric(REFUSED[signal]).labels(str(settings.id))
        self._started = False

    async def start(self, host: Host) -> None:
        self.monitor.acquire()
        self._started = True

    async def shutdown(self) -> None:
        if self._started:
            self._started = False
            await self.monitor.release_user()

    def refusal(self, size: int = 0) -> RetryableError | None:
        """Whether a request of ``size`` encoded bytes may come in, asked before it is decoded
        (see :class:`otelml.consumer.Admitting`)."""
        if self.monitor.admit(size):
            return None
        return RetryableError("data refused due to high memory usage", retry_after=self.retry_after, throttled=True)

    async def consume(self, batch: Batch) -> None:
        if self.monitor.refusing:
            self._refused.inc(count_items(batch))
            raise RetryableError("data refused due to high memory usage", retry_after=self.retry_after, throttled=True)
        await self.next.consume(batch)
