"""The anomaly processor's per-key state, kept per Kafka partition in a compacted changelog topic.

Behind a Kafka receiver (:mod:`otelml.partitions`), each key belongs to the
source partition its records came from. The keys a batch changed are written
to the changelog (:mod:`otelml.changelog`, topic
``<group_id>.<processor id>.changelog``) every ``state.changelog.interval``,
each value being the key's exported state (signed, see
:mod:`~otelml.processors.anomaly.store`) behind the digest of the settings
that shape it; the receiver commits a partition's offsets only once the state
for the records before them is written. So:

- a member that takes a partition over (after a rebalance, a clean stop or a
  ``kill -9``) restores its keys as of the group's committed offset, then reads
  on from that offset: every record is learned once, and the scores are those
  of one uninterrupted member;
- a changelog behind the committed offset (never written, deleted, written by
  a member with other settings) is caught up by replaying the source records
  since its last complete write (at most ``max_replay`` messages) through the
  models, without emitting them again;
- on revocation the partition's changed keys are written before its offsets
  are committed; when it goes to another member its keys leave the store.

The Kafka Streams and Quix Streams failure modes this is built against: a
rebalance during a restore (the receiver cancels it; what was imported is
dropped), a changelog that was never written (created, compacted, empty: the
replay warms the keys), and state written for records that were never
committed (values carry their source offset; a restore skips those newer
than the committed offset, since the records are read again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from otelml.changelog import Changelog, changelog_topic
from otelml.checkpoint import KEY_ENV
from otelml.errors import RetryableError
from otelml.partitions import Assignment, Origin, Partition, PartitionSource
from otelml.pdata import Batch, count_items
from otelml.processors.anomaly.config import ChangelogConfig
from otelml.processors.anomaly.store import KeyStore

DIGEST_BYTES = 32


class ChangelogKeyMissing(Exception):
    """Per-key state is signed: the changelog cannot be used without the checkpoint key."""


@dataclasses.dataclass(eq=False)
class _PartitionState:
    """The keys of one source partition and how far their state is written."""

    keys: set = dataclasses.field(default_factory=set)
    # Keys changed since the last write.
    dirty: set = dataclasses.field(default_factory=set)
    # The offset after the last batch counted, and the first offset whose effect is not written yet.
    counted_to: int | None = None
    unsaved_from: int | None = None
    writing: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class PartitionedState:
    """Keeps a processor's keys per source partition and their state in a changelog per consumer group.

    Parameters
    ----------
    processor_id
        The processor's ID (names the changelog topic).
    store
        Its key store.
    settings_digest
        Hex digest of the settings that shape the state: values written with others are not restored.
    config
        ``state.changelog``.
    signing_key
        The checkpoint key that per-key state is signed with.
    process
        Scores a batch in place, learning from it (used to replay).
    logger
        The processor's logger.
    """

    def __init__(
        self,
        processor_id: str,
        store: KeyStore,
        settings_digest: str,
        config: ChangelogConfig,
        signing_key: bytes | None,
        process: Callable[[Batch], None],
        logger: logging.LoggerAdapter,
    ):
        self.processor_id = processor_id
        self.store = store
        self.digest = bytes.fromhex(settings_digest)
        self.config = config
        self.signing_key = signing_key
        self.process = process
        self.logger = logger
        self._states: dict[tuple[PartitionSource, Partition], _PartitionState] = {}
        self._owner_of_key: dict[Any, _PartitionState] = {}
        self._changelogs: dict[PartitionSource, Changelog] = {}
        self._writer: asyncio.Task | None = None

    # Scoring -------------------------------------------------------------------

    def counted(self, origin: Origin | None) -> None:
        """After a batch was scored: the keys it changed belong to its partition, and are to be written."""
        if origin is None or not self.config.enabled:
            # Not from a partition: the store's changed keys stay for whoever else tracks them.
            return
        touched = self.store.take_dirty()
        state = self._states.get((origin.source, origin.partition))
        if state is None:
            state = self._states[origin.source, origin.partition] = _PartitionState()
        self._claim(state, touched)
        if state.unsaved_from is None:
            state.unsaved_from = origin.first_offset
        state.counted_to = origin.next_offset
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_every_interval())

    def _drop_evicted(self, state: _PartitionState) -> None:
        """Forget the keys the store evicted (least recently used, idle): their state is gone."""
        evicted = [key for key in state.keys if key not in self.store.keys]
        state.keys.difference_update(evicted)
        for key in evicted:
            if self._owner_of_key.get(key) is state:
                del self._owner_of_key[key]

    def _claim(self, state: _PartitionState, keys) -> None:
        state.dirty.update(keys)
        for key in keys:
            owner = self._owner_of_key.get(key)
            if owner is not state:
                if owner is not None:
                    owner.keys.discard(key)
                self._owner_of_key[key] = state
                state.keys.add(key)

    # The partition owner's calls (see otelml.partitions) ---------------------------

    async def restore(self, source: PartitionSource, assignments: Sequence[Assignment]) -> None:
        """Import the keys of newly assigned partitions as of the committed offset, and replay what the changelog lacks."""
        if not self.config.enabled or not assignments:
            return
        changelog = await self._changelog(source, assignments[0].partition.topic)
        for assignment in assignments:
            await self._restore_one(source, changelog, assignment)

    async def _restore_one(self, source: PartitionSource, changelog: Changelog, assignment: Assignment) -> None:
        partition, committed = assignment.partition, assignment.committed
        restored = await changelog.read(partition.partition, as_of=committed)
        entries, other_settings = {}, 0
        for key_bytes, value in restored.values.items():
            if value[:DIGEST_BYTES] == self.digest:
                entries[_decode_key(key_bytes)] = value[DIGEST_BYTES:]
            else:
                other_settings += 1
        self.store.import_(entries)
        self.store.take_dirty()
        state = self._states[source, partition] = _PartitionState(counted_to=committed)
        self._claim(state, entries)
        state.dirty.clear()
        replayed = 0
        if committed is not None and (restored.offset is None or restored.offset < committed):
            replayed = await self._replay(source, state, partition, restored.offset, committed)
        self.logger.info(
            "restored %d keys of %s from %s (complete up to offset %s, committed %s)%s%s",
            len(entries),
            partition,
            changelog.topic,
            restored.offset,
            committed,
            f", {other_settings} written with other model settings left out" if other_settings else "",
            f", replayed {replayed} records" if replayed else "",
        )

    async def _replay(
        self, source: PartitionSource, state: _PartitionState, partition: Partition, written: int | None, committed: int
    ) -> int:
        """Score the records the changelog lacks (not emitted again), then write the state they made."""
        start = max(written or 0, committed - self.config.max_replay)
        replayed = 0
        async for batch in source.replay(partition, start, committed):
            replayed += count_items(batch)
            self.process(batch)
            self._claim(state, self.store.take_dirty())
        state.unsaved_from = committed
        await self._write(source, partition, state)
        return replayed

    async def save(self, source: PartitionSource, partitions: Sequence[Partition]) -> None:
        for partition in partitions:
            state = self._states.get((source, partition))
            if state is not None:
                await self._write(source, partition, state)

    def forget(self, source: PartitionSource, partitions: Sequence[Partition]) -> None:
        """Drop the keys of ``partitions`` from the store: another member owns them now."""
        for partition in partitions:
            state = self._states.pop((source, partition), None)
            if state is None:
                continue
            keys = [key for key in state.keys if self._owner_of_key.get(key) is state]
            for key in keys:
                del self._owner_of_key[key]
            self.store.remove(keys)

    def unsaved_from(self, source: PartitionSource, partition: Partition) -> int | None:
        state = self._states.get((source, partition))
        return state.unsaved_from if state is not None else None

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        for changelog in self._changelogs.values():
            await changelog.stop()
        self._changelogs.clear()

    # Writing -------------------------------------------------------------------

    async def _changelog(self, source: PartitionSource, topic: str) -> Changelog:
        """The changelog of ``source``'s group, created when missing with as many partitions as ``topic``."""
        if source not in self._changelogs:
            if self.signing_key is None:
                raise ChangelogKeyMissing(
                    f"processor {self.processor_id}: the state changelog needs state.checkpoint.key (or {KEY_ENV}), the "
                    f"same on every member of group {source.group_id}, to sign per-key state; set it, or "
                    f"state.changelog.enabled: false"
                )
            changelog = Changelog(
                source.client_options, changelog_topic(source.group_id, self.processor_id), self.config.replication_factor
            )
            await changelog.start(await source.partition_count(topic))
            if changelog.policy != "compact":
                self.logger.warning(
                    "changelog topic %s has cleanup.policy=%s, not compact: it grows without bound",
                    changelog.topic,
                    changelog.policy or "unknown",
                )
            self._changelogs[source] = changelog
        return self._changelogs[source]

    async def _write_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            for (source, partition), state in list(self._states.items()):
                try:
                    await self._write(source, partition, state)
                except RetryableError as error:
                    self.logger.warning("cannot write the state of %s yet (its offsets wait): %s", partition, error)
                except Exception as error:
                    # Its offsets stay uncommitted: the next owner reads the records again.
                    self.logger.error("cannot write the state of %s: %s", partition, error)

    async def _write(self, source: PartitionSource, partition: Partition, state: _PartitionState) -> None:
        """Write the changed keys of ``partition`` and tell the receiver, which may then commit."""
        async with state.writing:
            offset = state.counted_to
            if state.unsaved_from is None or offset is None:  # nothing counted since the last write
                return
            keys, state.dirty = state.dirty, set()
            # Exported now, between batches, for a consistent snapshot; a key evicted since is deleted.
            exported = self.store.export(keys)
            values = {_encode_key(key): (self.digest + exported[key] if key in exported else None) for key in keys}
            try:
                changelog = await self._changelog(source, partition.topic)
                await changelog.write(partition.partition, values, offset)
            except BaseException:
                state.dirty.update(keys)
                raise
            self._drop_evicted(state)
            # Batches counted while writing are not in it: their offsets stay unsaved.
            state.unsaved_from = None if state.counted_to == offset else offset
        source.state_saved(partition)


def _encode_key(key: tuple) -> bytes:
    """A key in the changelog: its parts as a JSON list."""
    return json.dumps(list(key), ensure_ascii=False).encode()


def _decode_key(data: bytes) -> tuple:
    return tuple(json.loads(data))
