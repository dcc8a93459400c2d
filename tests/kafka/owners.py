"""A small real partition owner for the tests: counts log records per service, per source partition, in a changelog."""

from __future__ import annotations

import asyncio

from otelml.changelog import Changelog, changelog_topic
from otelml.component import Component, Kind
from otelml.configmodel import ComponentConfig
from otelml.partitions import Assignment, Partition, PartitionSource, current_origin
from otelml.pdata import Batch, Signal
from otelml.registry import Factory

COMPONENT_ID = "counter"


class RecordCounter(Component):
    """Counts records per ``service.name`` and source partition; the counts follow the partition through a changelog.

    With ``autosave`` the counts are saved after every batch; otherwise only
    when the receiver asks (revocation, shutdown) or :meth:`save_all` is
    called. ``restore_gate``, when given, holds every restore until it is set.
    ``events`` lists what happened, in order: ``("restore", partition,
    committed, restored offset)``, ``("restore cancelled", partition)``,
    ``("save", partition, offset)`` and ``("forget", partition)``.
    """

    mutates_data = False
    keeps_partition_state = True

    def __init__(self, next_consumer, autosave: bool = True, restore_gate: asyncio.Event | None = None):
        self.next_consumer = next_consumer
        self.autosave = autosave
        self.restore_gate = restore_gate
        self.counts: dict[Partition, dict[str, int]] = {}
        self.origins = []
        self.events: list[tuple] = []
        # Per partition: the first offset whose count is not saved, and the offset after the last counted batch.
        self._unsaved: dict[Partition, int] = {}
        self._counted_to: dict[Partition, int] = {}
        self._changelog: Changelog | None = None

    async def consume(self, batch: Batch) -> None:
        origin = current_origin()
        self.origins.append(origin)
        counts = self.counts.setdefault(origin.partition, {})
        for resource in batch.resource_logs:
            service = next(kv.value.string_value for kv in resource.resource.attributes if kv.key == "service.name")
            counts[service] = counts.get(service, 0) + sum(len(scope.log_records) for scope in resource.scope_logs)
        self._unsaved.setdefault(origin.partition, origin.first_offset)
        self._counted_to[origin.partition] = origin.next_offset
        await self.next_consumer.consume(batch)
        if self.autosave:
            await self._save(origin.source, origin.partition)

    @property
    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.counts.values())

    async def restore_partitions(self, source: PartitionSource, assignments: list[Assignment]) -> None:
        if self._changelog is None:
            changelog = Changelog(source.client_options, changelog_topic(source.group_id, COMPONENT_ID))
            await changelog.start(await source.partition_count(assignments[0].partition.topic))
            self._changelog = changelog
        for assignment in assignments:
            try:
                if self.restore_gate is not None:
                    await self.restore_gate.wait()
                restored = await self._changelog.read(assignment.partition.partition, assignment.committed)
            except asyncio.CancelledError:
                self.events.append(("restore cancelled", assignment.partition))
                raise
            self.counts[assignment.partition] = {key.decode(): int(value) for key, value in restored.values.items()}
            self.events.append(("restore", assignment.partition, assignment.committed, restored.offset))

    async def save_partitions(self, source: PartitionSource, partitions: list[Partition]) -> None:
        for partition in partitions:
            await self._save(source, partition)

    async def save_all(self, source: PartitionSource) -> None:
        await self.save_partitions(source, list(self._unsaved))

    async def _save(self, source: PartitionSource, partition: Partition) -> None:
        if partition not in self._unsaved:
            return
        offset = self._counted_to[partition]
        await self._changelog.write(
            partition.partition, {k.encode(): str(v).encode() for k, v in self.counts[partition].items()}, offset
        )
        del self._unsaved[partition]
        self.events.append(("save", partition, offset))
        source.state_saved(partition)

    def forget_partitions(self, source: PartitionSource, partitions: list[Partition]) -> None:
        for partition in partitions:
            self.counts.pop(partition, None)
            self._unsaved.pop(partition, None)
            self.events.append(("forget", partition))

    def unsaved_from(self, source: PartitionSource, partition: Partition) -> int | None:
        return self._unsaved.get(partition)

    def restored(self) -> list[Partition]:
        return [event[1] for event in self.events if event[0] == "restore"]

    async def shutdown(self) -> None:
        if self._changelog is not None:
            await self._changelog.stop()


class CounterConfig(ComponentConfig):
    autosave: bool = True


counter_factory = Factory(
    type="counter",
    kind=Kind.PROCESSOR,
    config_class=CounterConfig,
    signals=frozenset({Signal.LOGS}),
    create=lambda settings, config, signal, next_consumer: RecordCounter(next_consumer, config.autosave),
)
