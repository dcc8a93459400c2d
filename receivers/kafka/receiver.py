"""The Kafka receiver: consumes topics in a consumer group and commits what the pipeline accepted.

Each poll's messages of one partition are decoded into one batch. A task per
partition pushes its batches into the pipeline one after the other and
commits each once accepted, so offsets are committed in order; meanwhile the
client keeps fetching. A partition with ``MAX_QUEUED_BATCHES`` batches
waiting is paused until its task catches up, so a retryable refusal (retried
with backoff) holds back only that partition and bounds what is in memory.
When the group takes partitions away, their current attempt finishes and
commits, and the batches still waiting are dropped for the new owner to read.

Components downstream that keep state per partition
(:class:`otelml.partitions.PartitionOwner`) are told of assignments (the
partitions stay paused until they restored their state), of revocations
(they save before the offsets are committed) and of partitions gone for
good; an offset is committed only once no owner holds unsaved state for
records before it. Every push runs with its :class:`~otelml.partitions.Origin`
(partition and offsets) in the context.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.encoding import BatchBuilder, Encoding
from otelml.errors import RetryableError
from otelml.partitions import Assignment, Origin, Partition, PartitionOwner, pushing_from
from otelml.pdata import Signal
from otelml.receiverhelper import Outcome, PipelinePusher, report_crash, report_fatal
from otelml.receivers.kafka import metadata
from otelml.receivers.kafka.config import KafkaReceiverConfig
from otelml.receivers.kafka.source import KafkaSource

TRANSPORT = "kafka"
HEADER_ATTRIBUTE_PREFIX = "kafka.header."
# Fetched batches a partition may have waiting before it is paused.
MAX_QUEUED_BATCHES = 2
_POLL_TIMEOUT_MS = 500
_MAX_CONNECT_BACKOFF = 30.0
_UNFORESEEN_ERROR_PAUSE = 1.0
_RESTORE_RETRY_PAUSE = 1.0


@dataclasses.dataclass(frozen=True)
class _Route:
    """Where the messages of one topic go."""

    signal: Signal
    encoding: Encoding
    consumer: Consumer
    # Components downstream that keep state per partition of this topic.
    owners: tuple[PartitionOwner, ...] = ()


@dataclasses.dataclass
class _Partition:
    """The fetched batches of one partition and the task pushing them."""

    waiting: collections.deque = dataclasses.field(default_factory=collections.deque)
    # Set when the partition is revoked or the receiver stops: give up retrying.
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    paused: bool = False


@dataclasses.dataclass
class _Offsets:
    """Where an assigned partition stands: what the pipeline accepted, and what the group committed."""

    committed: int | None
    accepted: int | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class KafkaReceiver(Component):
    def __init__(self, settings: CreateSettings, config: KafkaReceiverConfig, consumers: dict[Signal, Consumer]):
        self.settings = settings
        self.config = config
        self.logger = settings.logger
        self.routes = {
            topic: _Route(signal, config.topics_of(signal).encoding, consumer)
            for signal, consumer in consumers.items()
            for topic in config.topics_of(signal).topics
        }
        self.pusher = PipelinePusher(settings, TRANSPORT, config.error_backoff)
        self._client: AIOKafkaConsumer | None = None
        self._run_task: asyncio.Task | None = None
        self._partitions: dict[TopicPartition, _Partition] = {}
        # Partitions being given away: what a poll still brings for them is left to the next owner.
        self._releasing: set[TopicPartition] = set()
        self._stopped = False
        self._offsets: dict[TopicPartition, _Offsets] = {}
        # Partitions whose state the owners hold, with the committed offset that state is complete up to.
        self._held: dict[TopicPartition, int | None] = {}
        # Partitions paused until their owners restored them, and the task restoring them.
        self._restoring: set[TopicPartition] = set()
        self._restore_task: asyncio.Task | None = None
        self._commit_tasks: set[asyncio.Task] = set()
        self._host: Host | None = None
        # What partition owners downstream see of this receiver; its connection options are made at start.
        self.source = KafkaSource(
            str(settings.id),
            config.group_id,
            {},
            lambda partition, messages: self._decode(partition, messages, report=False),
            self._state_saved,
            self._partition_count,
        )
        self._lag = settings.telemetry.metric(metadata.OFFSET_LAG)

    @property
    def client(self) -> AIOKafkaConsumer:
        """The consumer; set before it joins the group, so every callback of the group has it."""
        assert self._client is not None, "the Kafka consumer is used before it was made"
        return self._client

    async def start(self, host: Host) -> None:
        # Built here so that unreadable TLS files fail the start; the brokers
        # themselves may come up later, the run loop keeps trying.
        options = self.config.client_options()
        self._host = host
        self.source.client_options = options
        # A host that cannot name partition owners (one made for a test or a tool) has none.
        find_owners = getattr(host, "partition_owners", None)
        if find_owners is not None:
            owners = {signal: tuple(find_owners(self.settings.id, signal)) for signal in {r.signal for r in self.routes.values()}}
            self.routes = {topic: dataclasses.replace(route, owners=owners[route.signal]) for topic, route in self.routes.items()}
        self._run_task = asyncio.create_task(self._run(options))
        report_crash(self._run_task, self.settings, host, "the consumer loop")

    async def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
        await self._release(set(self._partitions) | set(self._offsets))
        await asyncio.gather(*self._commit_tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.stop()
            self._client = None

    # --- consuming -----------------------------------------------------------

    async def _run(self, options: dict) -> None:
        await self._connect(options)
        self.logger.info("consuming %s as group %s", ", ".join(sorted(self.routes)), self.config.group_id)
        while True:
            try:
                fetched = await self.client.getmany(timeout_ms=_POLL_TIMEOUT_MS, max_records=self.config.max_fetch_records)
            except KafkaError as error:
                # The client recovers from broker outages by itself; wait for it.
                self.logger.warning("fetching failed: %s", error)
                await asyncio.sleep(1.0)
                continue
            for partition, messages in fetched.items():
                if messages:
                    self._dispatch(partition, messages)

    async def _connect(self, options: dict) -> AIOKafkaConsumer:
        delay = 1.0
        while True:
            client = AIOKafkaConsumer(
                **options,
                group_id=self.config.group_id,
                enable_auto_commit=False,
                auto_offset_reset=self.config.initial_offset,
                session_timeout_ms=int(self.config.session_timeout * 1000),
                heartbeat_interval_ms=int(self.config.heartbeat_interval * 1000),
                max_poll_records=self.config.max_fetch_records,
                fetch_max_wait_ms=int(self.config.max_fetch_wait * 1000),
                max_partition_fetch_bytes=self.config.default_fetch_size,
            )
            client.subscribe(topics=sorted(self.routes), listener=_Rebalance(self))
            # The first assignment comes within start(), and pauses partitions on this client.
            self._client = client
            try:
                await client.start()
                return client
            except asyncio.CancelledError:
                self._client = None
                await client.stop()
                raise
            except KafkaError as error:
                self._client = None
                await client.stop()
                self.logger.warning(
                    "cannot reach the brokers %s, retrying in %.0fs: %s", ",".join(self.config.brokers), delay, error
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_CONNECT_BACKOFF)

    def _dispatch(self, partition: TopicPartition, messages: list) -> None:
        if partition in self._releasing:
            return
        if partition in self._restoring:
            # Fetched before the pause took hold: read again once the owners restored their state.
            self.client.seek(partition, messages[0].offset)
            return
        state = self._partitions.setdefault(partition, _Partition())
        state.waiting.append(messages)
        if len(state.waiting) >= MAX_QUEUED_BATCHES and not state.paused:
            self.client.pause(partition)
            state.paused = True
        # A task that found nothing more to do has returned within the same
        # step, so it is either done or will see this batch.
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(self._drain(partition, state))

    async def _drain(self, partition: TopicPartition, state: _Partition) -> None:
        while state.waiting and not state.stop.is_set():
            messages = state.waiting[0]
            try:
                outcome = await self._process(partition, messages, state.stop)
            except Exception:
                # Unforeseen: read these messages again rather than skip them, after a pause, not in a hot loop.
                self.logger.exception(
                    "processing %s[%d] failed; reading it again from offset %d",
                    partition.topic,
                    partition.partition,
                    messages[0].offset,
                )
                await asyncio.sleep(_UNFORESEEN_ERROR_PAUSE)
                state.waiting.clear()
                if not state.stop.is_set() and partition in self.client.assignment():
                    self.client.seek(partition, messages[0].offset)
                    self._resume(partition, state)
                return
            if outcome is Outcome.ABANDONED:
                return
            state.waiting.popleft()
            if len(state.waiting) < MAX_QUEUED_BATCHES and partition in self.client.assignment():
                self._resume(partition, state)

    def _resume(self, partition: TopicPartition, state: _Partition) -> None:
        if state.paused:
            self.client.resume(partition)
            state.paused = False

    async def _process(self, partition: TopicPartition, messages: list, stop: asyncio.Event) -> Outcome:
        """Decode, push and commit one batch."""
        route = self.routes[partition.topic]
        next_offset = messages[-1].offset + 1
        builder = self._decode(partition, messages)
        offsets = self._offsets.setdefault(partition, _Offsets(None))
        if not self.config.message_marking.after:
            await self._commit(partition, offsets, next_offset)
        outcome = Outcome.ACCEPTED
        if builder.items:
            origin = Origin(self.source, Partition(partition.topic, partition.partition), messages[0].offset, next_offset)
            with pushing_from(origin):
                outcome = await self.pusher.push(route.consumer, builder.batch, builder.items, stop)
        if outcome is not Outcome.ABANDONED and self.config.message_marking.after:
            offsets.accepted = next_offset
            await self._commit_ready(partition)
        highwater = self.client.highwater(partition)
        if highwater is not None:
            self._lag.labels(str(self.settings.id), partition.topic, str(partition.partition)).set(
                max(highwater - next_offset, 0)
            )
        return outcome

    def _decode(self, partition: TopicPartition, messages: list, report: bool = True) -> BatchBuilder:
        """One batch of ``messages``; undecodable ones are skipped (and, with ``report``, counted and logged)."""
        route = self.routes[partition.topic]
        builder = BatchBuilder(route.signal, route.encoding)
        for message in messages:
            try:
                # A message without a timestamp (-1) leaves the record time to the receive time.
                time_ns = message.timestamp * 1_000_000 if message.timestamp > 0 else None
                builder.add(message.value or b"", self._header_attributes(message.headers), time_ns=time_ns)
            except ValueError as error:
                if report:
                    where = f"topic {partition.topic} partition {partition.partition} offset {message.offset}"
                    self.pusher.bad_message("undecodable", where, error)
        if builder.repaired and report:
            self.pusher.repaired(route.signal, builder.repaired, f"topic {partition.topic} partition {partition.partition}")
        return builder

    def _header_attributes(self, headers) -> dict[str, str]:
        extraction = self.config.header_extraction
        if not extraction.extract_headers or not headers:
            return {}
        wanted = set(extraction.headers)
        return {
            HEADER_ATTRIBUTE_PREFIX + key: value.decode("utf-8", errors="replace")
            for key, value in headers
            if key in wanted and value is not None
        }

    # --- commits, gated by the partition owners -------------------------------

    async def _commit_ready(self, partition: TopicPartition) -> bool:
        """Commit what the pipeline accepted, short of records whose state an owner has not saved yet.

        False when a commit failed (the partition moved on without this member).
        """
        offsets = self._offsets.get(partition)
        if offsets is None:
            return True
        async with offsets.lock:
            target = offsets.accepted
            if target is None:
                return True
            key = Partition(partition.topic, partition.partition)
            for owner in self.routes[partition.topic].owners:
                unsaved = owner.unsaved_from(self.source, key)
                if unsaved is not None:
                    target = min(target, unsaved)
            if offsets.committed is not None and target <= offsets.committed:
                return True
            return await self._commit(partition, offsets, target)

    async def _commit(self, partition: TopicPartition, offsets: _Offsets, offset: int) -> bool:
        try:
            await self.client.commit({partition: offset})
        except (KafkaError, IllegalStateError) as error:
            # The partition moved to another member, which reads these
            # messages again: a duplicate, never a loss.
            self.logger.warning("cannot commit offset %d of %s[%d]: %s", offset, partition.topic, partition.partition, error)
            return False
        offsets.committed = offset
        return True

    def _state_saved(self, partition: Partition) -> None:
        """An owner saved state: commit what it held back, in a task of its own."""
        key = _kafka(partition)
        if self._stopped or key not in self._offsets:
            return
        task = asyncio.create_task(self._commit_ready(key))
        self._commit_tasks.add(task)
        task.add_done_callback(self._commit_tasks.discard)

    async def _partition_count(self, topic: str) -> int:
        partitions = self.client.partitions_for_topic(topic)
        if partitions is None:
            await self.client.topics()
            partitions = self.client.partitions_for_topic(topic) or ()
        return len(partitions)

    # --- assignment and revocation --------------------------------------------

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        """Pause the partitions that have owners and restore them in a task (a rebalance may cancel it)."""
        self._releasing.clear()
        owned = {p for p in assigned if self.routes[p.topic].owners}
        self._offsets = {p: self._offsets.get(p, _Offsets(None)) for p in assigned}
        gone = [p for p in self._held if p not in owned]
        self._forget(gone)
        if owned:
            self.client.pause(*owned)
            self._restoring = set(owned)
            self._restore_task = asyncio.create_task(self._restore(owned))

    async def _restore(self, partitions: set[TopicPartition]) -> None:
        """Ask every owner to restore the partitions whose state it does not hold already, then resume them."""
        while True:
            try:
                committed = {p: await self.client.committed(p) for p in sorted(partitions)}
                # State kept through the rebalance is still good when no other member committed since.
                stale = [p for p in partitions if p not in self._held or self._held[p] != committed[p]]
                self._forget([p for p in stale if p in self._held])
                await asyncio.gather(
                    *(
                        owner.restore_partitions(self.source, [Assignment(p, committed[_kafka(p)]) for p in owned])
                        for owner, owned in self._owners_of(stale).items()
                    )
                )
                break
            except asyncio.CancelledError:
                self._forget([p for p in partitions if p not in self._held])
                raise
            except (KafkaError, RetryableError) as error:
                self._forget([p for p in partitions if p not in self._held])
                self.logger.warning("cannot restore the state of %s yet, retrying: %s", _describe(partitions), error)
                await asyncio.sleep(_RESTORE_RETRY_PAUSE)
            except Exception as error:
                self.logger.error("restoring the state of %s failed: %s", _describe(partitions), error)
                report_fatal(self.settings, self._host, error)
                return
        for partition in partitions:
            self._held[partition] = committed[partition]
            self._offsets[partition].committed = committed[partition]
        self.logger.info("state restored for %s", _describe(partitions))
        self._restoring.clear()
        assignment = self.client.assignment()
        self.client.resume(*(p for p in partitions if p in assignment))

    def _owners_of(self, partitions) -> dict[PartitionOwner, list[Partition]]:
        """The owners of ``partitions``, each with its share of them."""
        shares: dict[PartitionOwner, list[Partition]] = {}
        for partition in sorted(partitions):
            for owner in self.routes[partition.topic].owners:
                shares.setdefault(owner, []).append(Partition(partition.topic, partition.partition))
        return shares

    async def _release(self, partitions: set[TopicPartition]) -> None:
        """Before ``partitions`` go: finish their work, have their state saved, commit, and keep only state whose commit went through."""
        if self._restore_task is not None and not self._restore_task.done():
            self._restore_task.cancel()
            await asyncio.gather(self._restore_task, return_exceptions=True)
        self._restoring.clear()
        await self._finish(partitions)
        held = [p for p in sorted(partitions) if p in self._held]
        saves = [owner.save_partitions(self.source, share) for owner, share in self._owners_of(held).items()]
        failures = [r for r in await asyncio.gather(*saves, return_exceptions=True) if isinstance(r, BaseException)]
        for failure in failures:
            self.logger.error(
                "saving the state of %s failed; the next owner reads its records again: %s", _describe(held), failure
            )
        for partition in sorted(partitions):
            committed = await self._commit_ready(partition)
            if partition in self._held:
                if committed and not failures:
                    self._held[partition] = self._offsets[partition].committed
                else:
                    self._forget([partition])
            self._offsets.pop(partition, None)
            try:
                self._lag.remove(str(self.settings.id), partition.topic, str(partition.partition))
            except KeyError:
                pass

    async def _finish(self, partitions) -> None:
        """Let the work on ``partitions`` end: the current attempt completes and commits, retries stop,
        waiting batches are dropped (uncommitted, so the next owner reads them)."""
        self._releasing.update(partitions)
        states = [self._partitions.pop(p) for p in partitions if p in self._partitions]
        for state in states:
            state.stop.set()
        await asyncio.gather(*(s.task for s in states if s.task is not None), return_exceptions=True)

    def _forget(self, partitions) -> None:
        for owner, share in self._owners_of(partitions).items():
            owner.forget_partitions(self.source, share)
        for partition in partitions:
            self._held.pop(partition, None)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, receiver: KafkaReceiver):
        self.receiver = receiver

    async def on_partitions_revoked(self, revoked) -> None:
        if revoked:
            self.receiver.logger.info("partitions revoked: %s", _describe(revoked))
        await self.receiver._release(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        self.receiver.logger.info("partitions assigned: %s", _describe(assigned))
        self.receiver._assigned(set(assigned))


def _kafka(partition: Partition) -> TopicPartition:
    return TopicPartition(partition.topic, partition.partition)


def _describe(partitions) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(partitions)) or "none"
