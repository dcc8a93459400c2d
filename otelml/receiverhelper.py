"""At-least-once hand-over from a message broker into a pipeline.

The Kafka and MQTT receivers acknowledge a message to its broker (Kafka
offset commit, MQTT PUBACK/PUBCOMP) only after the pipeline accepted the
data. :class:`PipelinePusher` does the pushing: a retryable refusal is
retried with exponential backoff while the message stays unacknowledged,
a permanent one is given up; either way every item is counted with the
receiver's transport.
"""

from __future__ import annotations

import asyncio
import enum

from otelml.component import CreateSettings, Host
from otelml.configretry import Backoff, RetryConfig
from otelml.consumer import Consumer
from otelml.errors import PermanentError
from otelml.pdata import Batch, Signal

# Pushing into a pipeline is local: start retrying fast, but never give up
# unless told to, since giving up means skipping data a broker still holds.
DEFAULT_ERROR_BACKOFF = RetryConfig(initial_interval=0.1, max_interval=10.0, max_elapsed_time=0)


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    """The pipeline took the data: acknowledge it."""
    REJECTED = "rejected"
    """Refused for good (permanent error, retries off or exhausted): acknowledge, it was counted as dropped."""
    ABANDONED = "abandoned"
    """Stopped while retrying: do not acknowledge, so that the broker delivers it again."""


class PipelinePusher:
    """Pushes batches into a pipeline for one receiver, retrying as ``backoff`` says.

    Parameters
    ----------
    settings
        The receiver's create settings (ID, telemetry, logger).
    transport
        The transport label of the receiver's metrics, e.g. ``kafka``.
    backoff
        How to retry retryable refusals; ``max_elapsed_time: 0`` retries until stopped.
    """

    def __init__(self, settings: CreateSettings, transport: str, backoff: RetryConfig):
        self.settings = settings
        self.transport = transport
        self.backoff = backoff
        self._name = str(settings.id)
        self._telemetry = settings.telemetry
        self._logger = settings.logger

    async def push(self, consumer: Consumer, batch: Batch, items: int, stop: asyncio.Event) -> Outcome:
        """Hand ``batch`` to ``consumer`` until accepted, refused for good, or ``stop`` is set."""
        signal = Signal.of(batch)
        backoff = Backoff(self.backoff)
        while True:
            try:
                await consumer.consume(batch)
            except PermanentError as error:
                self._telemetry.receiver_refused(self._name, self.transport, signal, items)
                return self._reject(signal, items, "permanent_error", error)
            except Exception as error:
                self._telemetry.receiver_refused(self._name, self.transport, signal, items)
                if not self.backoff.enabled:
                    return self._reject(signal, items, "retry_disabled", error)
                wait = backoff.next_wait()
                if wait is None:
                    return self._reject(signal, items, "retries_exhausted", error)
                self._logger.warning("the pipeline refused %d %s, retrying in %.2fs: %s", items, signal.item_name, wait, error)
                if await _set_within(stop, wait):
                    self._logger.info("stopped retrying %d %s; the broker will deliver them again", items, signal.item_name)
                    return Outcome.ABANDONED
            else:
                self._telemetry.receiver_accepted(self._name, self.transport, signal, items)
                return Outcome.ACCEPTED

    def bad_message(self, reason: str, where: str, error: Exception) -> None:
        """Count and log one message that cannot be used; the caller skips it."""
        self._telemetry.receiver_bad_request(self._name, self.transport, reason)
        self._logger.warning("skipping a message that cannot be used (%s) at %s: %s", reason, where, error)

    def repaired(self, signal: Signal, items: int, where: str) -> None:
        """Count and log ``items`` decoded at ``where`` with invalid UTF-8 replaced by U+FFFD."""
        self._telemetry.receiver_repaired(self._name, self.transport, signal, items)
        self._logger.warning("replaced invalid UTF-8 with U+FFFD in %d %s at %s", items, signal.item_name, where)

    def _reject(self, signal: Signal, items: int, reason: str, error: Exception) -> Outcome:
        self._telemetry.drop(self._name, signal, items, reason)
        self._logger.error("dropping %d %s (%s): %s", items, signal.item_name, reason, error)
        return Outcome.REJECTED


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def report_fatal(settings: CreateSettings, host: Host | None, error: BaseException) -> None:
    """Tell the service that the receiver cannot go on (it stops, as the collector does)."""
    report = getattr(host, "report_fatal_error", None)
    if report is not None:
        report(f"receiver {settings.id}", error)


def report_crash(task: asyncio.Task, settings: CreateSettings, host: Host | None, what: str) -> None:
    """Log and report as fatal an error that ends ``task``, a receiver's loop, which would otherwise end silently."""

    def done(task: asyncio.Task) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            settings.logger.error("%s failed: %r", what, error)
            report_fatal(settings, host, error)

    task.add_done_callback(done)
