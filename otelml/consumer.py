"""The consumer contract between pipeline stages, and fan-out.

Every processor, exporter and connector is a :class:`Consumer`: an object
with ``async consume(batch)`` that returns once it has accepted the batch,
or raises a :class:`~otelml.errors.ConsumerError`. A consumer that changes
the batch in place says so with ``mutates_data = True``; fan-out then gives
it its own copy, and every other consumer shares the original.

A consumer that knows it would refuse any batch now (the memory limiter
over its limit) says so *before* the data is decoded, as an
:class:`Admitting` consumer: receivers ask :func:`refusal` first and answer
the sender at once, so that a flood costs no decoding and no memory.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from otelml.errors import PermanentError, RetryableError
from otelml.pdata import Batch


@runtime_checkable
class Consumer(Protocol):
    mutates_data: bool

    async def consume(self, batch: Batch) -> None: ...


@runtime_checkable
class Admitting(Protocol):
    """A consumer that can tell, before a request is decoded, that it would refuse it."""

    def refusal(self, size: int = 0) -> RetryableError | None:
        """The error a request of ``size`` encoded bytes (0: not read yet) would be refused with now, or
        None when it may come (and may still be refused once decoded); an admitted size counts as coming."""
        ...


def refusal(consumer: Consumer, size: int = 0) -> RetryableError | None:
    """What ``consumer`` would refuse a request of ``size`` encoded bytes with, when it can tell before decoding."""
    return consumer.refusal(size) if isinstance(consumer, Admitting) else None


class FanOut:
    """Sends each batch to several consumers concurrently.

    The batch is accepted only when every consumer accepted it. When some
    fail, a permanent error is raised only if every failure was permanent,
    so that a sender retries when any branch may still take the data.
    """

    def __init__(self, consumers: list[Consumer]):
        if len(consumers) < 2:
            raise ValueError("fan-out needs two consumers or more (fan_out() passes one straight through)")
        self.consumers = consumers
        # Copies are made for all but the last mutating consumer, which
        # takes the original when no read-only consumer shares it: so this
        # fan-out mutates its input whenever any of its consumers does.
        self.mutates_data = any(c.mutates_data for c in consumers)

    def refusal(self, size: int = 0) -> RetryableError | None:
        """A branch's refusal: the batch is accepted only when every branch accepts it."""
        return next((r for r in (refusal(c, size) for c in self.consumers) if r is not None), None)

    async def consume(self, batch: Batch) -> None:
        readers = [c for c in self.consumers if not c.mutates_data]
        mutators = [c for c in self.consumers if c.mutates_data]
        deliveries = []
        for index, consumer in enumerate(mutators):
            owns_original = not readers and index == len(mutators) - 1
            deliveries.append((consumer, batch if owns_original else _copy(batch)))
        deliveries += [(consumer, batch) for consumer in readers]
        results = await asyncio.gather(*(c.consume(b) for c, b in deliveries), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return
        if all(isinstance(e, PermanentError) for e in errors):
            raise errors[0]
        raise next(e for e in errors if not isinstance(e, PermanentError))


def _copy(batch: Batch) -> Batch:
    duplicate = type(batch)()
    duplicate.CopyFrom(batch)
    return duplicate


def fan_out(consumers: list[Consumer]) -> Consumer:
    return consumers[0] if len(consumers) == 1 else FanOut(consumers)
