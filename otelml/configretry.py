"""Retry settings and the one backoff that follows them, as the collector's ``configretry``.

Exporters retry a destination with them (``retry_on_failure``), broker
receivers retry the pipeline with them (``error_backoff``).
"""

from __future__ import annotations

import random
import time

from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration


class RetryConfig(ComponentConfig):
    """Exponential backoff with jitter, given up after ``max_elapsed_time`` (0 = never)."""

    enabled: bool = True
    initial_interval: Duration = 5.0
    randomization_factor: float = Field(0.5, ge=0, le=1)
    multiplier: float = Field(1.5, ge=1)
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 300.0

    def validate_config(self) -> list[str]:
        problems = []
        if self.initial_interval <= 0:
            problems.append("initial_interval: must be positive")
        if self.max_interval < self.initial_interval:
            problems.append("max_interval: must not be shorter than initial_interval")
        if self.max_elapsed_time < 0:
            problems.append("max_elapsed_time: must not be negative (0 retries forever)")
        return problems


class Backoff:
    """The waits between the attempts of one piece of work.

    Each wait is the current interval, randomised by ``randomization_factor``;
    the interval then grows by ``multiplier`` up to ``max_interval``. A delay
    the other side asked for (Retry-After, RetryInfo) lengthens the wait but
    never shortens it, as in the collector: a server answering "retry after 0"
    must not turn the backoff into a busy loop.

    >>> backoff = Backoff(RetryConfig(initial_interval=1, multiplier=2, max_interval=3, randomization_factor=0))
    >>> [backoff.next_wait() for _ in range(4)]
    [1.0, 2.0, 3.0, 3.0]
    >>> backoff.next_wait(retry_after=10.0)
    10.0
    >>> backoff.next_wait(retry_after=0)
    3.0
    >>> Backoff(RetryConfig(initial_interval=2, max_interval=2, max_elapsed_time=1)).next_wait() is None
    True
    """

    def __init__(self, config: RetryConfig):
        self.config = config
        self._interval = config.initial_interval
        limit = config.max_elapsed_time
        self._deadline = time.monotonic() + limit if limit > 0 else float("inf")

    def next_wait(self, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when that would pass ``max_elapsed_time``: give up."""
        jitter = self.config.randomization_factor
        wait = max(self._interval * random.uniform(1 - jitter, 1 + jitter), retry_after or 0.0)
        self._interval = min(self._interval * self.config.multiplier, self.config.max_interval)
        return None if time.monotonic() + wait > self._deadline else wait
