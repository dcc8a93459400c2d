"""State that follows a Kafka partition from one consumer to the next: what a receiver and the components it feeds agree on.

A receiver that consumes partitions in a group (the Kafka receiver) tells
the components downstream where each batch came from, the way the
collector carries ``client.Info`` in the context: :func:`current_origin`
reads a :mod:`contextvars` value that the receiver sets around each push.
A component that hands data on from a task of its own (a ``batch``
processor with a timeout) loses it, as in the collector; such a component
says so with a true ``detaches_context`` attribute, and the service refuses
to start when one stands between a receiver and a :class:`PartitionOwner`.

A :class:`PartitionOwner` keeps state per partition (the ``anomaly``
processor's per-key models). In the pipelines of a Kafka receiver it is
called:

- on assignment, :meth:`~PartitionOwner.restore_partitions`, while the
  partitions stay paused: nothing of them is pushed before every owner has
  returned. A rebalance that arrives meanwhile cancels the call;
- on revocation and shutdown, :meth:`~PartitionOwner.save_partitions`,
  before the receiver commits their offsets;
- when the partitions are gone for good (or a restore was cancelled),
  :meth:`~PartitionOwner.forget_partitions`.

A partition given back to the same member in the same rebalance, with no
other member having committed in between, is neither forgotten nor
restored: its state stays where it is. The receiver commits an offset only
when no owner has unsaved state for records before it
(:meth:`~PartitionOwner.unsaved_from`); an owner calls
:meth:`PartitionSource.state_saved` once a save is durable, so that the
receiver commits then.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol, TypeGuard, runtime_checkable

from otelml.pdata import Batch


@dataclasses.dataclass(frozen=True, order=True)
class Partition:
    """One partition of a source topic."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclasses.dataclass(frozen=True)
class Assignment:
    """A partition given to this member, and the group's committed offset on it (where reading resumes).

    ``committed`` is None when the group has committed nothing there yet.
    """

    partition: Partition
    committed: int | None


class PartitionSource(Protocol):
    """What a partition owner may ask of the receiver that feeds it.

    ``group_id`` is the consumer group; ``client_options`` are the keyword
    arguments of aiokafka's clients for the same brokers (connection,
    TLS, SASL), for state topics beside the source.
    """

    receiver_id: str
    group_id: str
    client_options: dict

    def state_saved(self, partition: Partition) -> None:
        """An owner made more of its state durable: offsets held back for it may be committed now."""

    async def partition_count(self, topic: str) -> int:
        """How many partitions the source topic ``topic`` has."""

    def replay(self, partition: Partition, start: int, end: int) -> AsyncIterator[Batch]:
        """The batches of offsets ``start`` to ``end`` (excluded) of ``partition``, decoded as the receiver decodes them."""


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a batch came from: offsets ``first_offset`` to ``next_offset`` (excluded) of one partition."""

    source: PartitionSource
    partition: Partition
    first_offset: int
    next_offset: int


@runtime_checkable
class PartitionOwner(Protocol):
    """A component that keeps state per source partition (see the module docstring for when each call comes).

    ``keeps_partition_state`` false means that, as configured, it keeps
    nothing per partition: it is then not treated as an owner.
    """

    keeps_partition_state: bool

    async def restore_partitions(self, source: PartitionSource, assignments: Sequence[Assignment]) -> None:
        """Load the state of newly assigned partitions; on cancellation, what was loaded is forgotten by the caller."""

    async def save_partitions(self, source: PartitionSource, partitions: Sequence[Partition]) -> None:
        """Make the state of ``partitions`` durable for every record handed over so far."""

    def forget_partitions(self, source: PartitionSource, partitions: Sequence[Partition]) -> None:
        """Drop the state of ``partitions``: another member owns them now."""

    def unsaved_from(self, source: PartitionSource, partition: Partition) -> int | None:
        """The first offset of ``partition`` whose effect on the state is not durable yet; None when all is."""


_ORIGIN: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("otelml_partition_origin", default=None)


def current_origin() -> Origin | None:
    """Where the batch being consumed came from, when a partitioned receiver pushed it in this context.

    >>> current_origin() is None
    True
    """
    return _ORIGIN.get()


@contextlib.contextmanager
def pushing_from(origin: Origin) -> Iterator[None]:
    """Make ``origin`` the :func:`current_origin` of everything called within (tasks created within inherit it)."""
    token = _ORIGIN.set(origin)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def is_owner(component: object) -> TypeGuard[PartitionOwner]:
    """Whether ``component`` is a :class:`PartitionOwner` that keeps state per partition as configured."""
    return isinstance(component, PartitionOwner) and component.keeps_partition_state


def detaches_context(component: object) -> bool:
    """Whether ``component`` passes data on from a task of its own, so that downstream loses :func:`current_origin`."""
    return bool(getattr(component, "detaches_context", False))
