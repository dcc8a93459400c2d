"""The Kafka receiver: consumes topics in a consumer group and commits what the pipeline accepted.

Each poll's messages of one partition are decoded into one batch. A task per
partition pushes its batches into the pipeline one after the other and
commits each once accepted, so offsets are committed in order; meanwhile the
client keeps fetching. A partition with ``MAX_QUEUED_BATCHES`` batches
waiting is paused until its task catches up, so a retryable refusal (retried
with backoff) holds back only that partition and bounds what is in memory.
When the group takes partitions away, their current attempt finishes and
commits, and the batches still waiting are dropped for the new owner to read.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from otelml.receivers.kafka.config import KafkaReceiverConfig

from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.encoding import BatchBuilder, Encoding
from otelml.pdata import Signal
from otelml.receiverhelper import Outcome, PipelinePusher

TRANSPORT = "kafka"
HEADER_ATTRIBUTE_PREFIX = "kafka.header."
# Fetched batches a partition may have waiting before it is paused.
MAX_QUEUED_BATCHES = 2
_POLL_TIMEOUT_MS = 500
_MAX_CONNECT_BACKOFF = 30.0
_UNFORESEEN_ERROR_PAUSE = 1.0


@dataclasses.dataclass(frozen=True)
class _Route:
    """Where the messages of one topic go."""

    signal: Signal
    encoding: Encoding
    consumer: Consumer


@dataclasses.dataclass
class _Partition:
    """The fetched batches of one partition and the task pushing them."""

    waiting: collections.deque = dataclasses.field(default_factory=collections.deque)
    # Set when the partition is revoked or the receiver stops: give up retrying.
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    paused: bool = False


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

    async def start(self, host: Host) -> None:
        # Built here so that unreadable TLS files fail the start; the brokers
        # themselves may come up later, the run loop keeps trying.
        options = self.config.client_options()
        self._run_task = asyncio.create_task(self._run(options))
        self._run_task.add_done_callback(lambda task: self._report_crash(task, host))

    def _report_crash(self, task: asyncio.Task, host: Host) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self.logger.error("the consumer loop failed: %r", task.exception())
        report = getattr(host, "report_fatal_error", None)
        if report is not None:
            report(f"receiver {self.settings.id}", task.exception())

    async def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
        await self._finish(list(self._partitions))
        if self._client is not None:
            await self._client.stop()
            self._client = None

    # --- consuming -----------------------------------------------------------

    async def _run(self, options: dict) -> None:
        self._client = await self._connect(options)
        self.logger.info("consuming %s as group %s", ", ".join(sorted(self.routes)), self.config.group_id)
        while True:
            try:
                fetched = await self._client.getmany(timeout_ms=_POLL_TIMEOUT_MS, max_records=self.config.max_fetch_records)
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
            try:
                await client.start()
                return client
            except asyncio.CancelledError:
                await client.stop()
                raise
            except KafkaError as error:
                await client.stop()
                self.logger.warning("cannot reach the brokers %s, retrying in %.0fs: %s", ",".join(self.config.brokers), delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_CONNECT_BACKOFF)

    def _dispatch(self, partition: TopicPartition, messages: list) -> None:
        if partition in self._releasing:
            return
        state = self._partitions.setdefault(partition, _Partition())
        state.waiting.append(messages)
        if len(state.waiting) >= MAX_QUEUED_BATCHES and not state.paused:
            self._client.pause(partition)
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
                self.logger.exception("processing %s[%d] failed; reading it again from offset %d",
                                      partition.topic, partition.partition, messages[0].offset)
                await asyncio.sleep(_UNFORESEEN_ERROR_PAUSE)
                state.waiting.clear()
                if not state.stop.is_set() and partition in self._client.assignment():
                    self._client.seek(partition, messages[0].offset)
                    self._resume(partition, state)
                return
            if outcome is Outcome.ABANDONED:
                return
            state.waiting.popleft()
            if len(state.waiting) < MAX_QUEUED_BATCHES and partition in self._client.assignment():
                self._resume(partition, state)

    def _resume(self, partition: TopicPartition, state: _Partition) -> None:
        if state.paused:
            self._client.resume(partition)
            state.paused = False

    async def _process(self, partition: TopicPartition, messages: list, stop: asyncio.Event) -> Outcome:
        """Decode, push and commit one batch."""
        route = self.routes[partition.topic]
        next_offset = messages[-1].offset + 1
        builder = BatchBuilder(route.signal, route.encoding)
        for message in messages:
            try:
                # A message without a timestamp (-1) leaves the record time to the receive time.
                time_ns = message.timestamp * 1_000_000 if message.timestamp > 0 else None
                builder.add(message.value or b"", self._header_attributes(message.headers), time_ns=time_ns)
            except ValueError as error:
                where = f"topic {partition.topic} partition {partition.partition} offset {message.offset}"
                self.pusher.bad_message("undecodable", where, error)
        if builder.repaired:
            self.pusher.repaired(route.signal, builder.repaired, f"topic {partition.topic} partition {partition.partition}")
        if not self.config.message_marking.after:
            await self._commit(partition, next_offset)
        outcome = Outcome.ACCEPTED
        if builder.items:
            outcome = await self.pusher.push(route.consumer, builder.batch, builder.items, stop)
        if outcome is not Outcome.ABANDONED and self.config.message_marking.after:
            await self._commit(partition, next_offset)
        return outcome

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

    async def _commit(self, partition: TopicPartition, offset: int) -> None:
        try:
            await self._client.commit({partition: offset})
        except (KafkaError, IllegalStateError) as error:
            # The partition moved to another member, which reads these
            # messages again: a duplicate, never a loss.
            self.logger.warning("cannot commit offset %d of %s[%d]: %s", offset, partition.topic, partition.partition, error)

    async def _finish(self, partitions) -> None:
        """Let the work on ``partitions`` end: the current attempt completes and commits, retries stop,
        waiting batches are dropped (uncommitted, so the next owner reads them)."""
        self._releasing.update(partitions)
        states = [self._partitions.pop(p) for p in partitions if p in self._partitions]
        for state in states:
            state.stop.set()
        await asyncio.gather(*(s.task for s in states if s.task is not None), return_exceptions=True)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, receiver: KafkaReceiver):
        self.receiver = receiver

    async def on_partitions_revoked(self, revoked) -> None:
        if revoked:
            self.receiver.logger.info("partitions revoked: %s", _describe(revoked))
        await self.receiver._finish(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        self.receiver._releasing.clear()
        self.receiver.logger.info("partitions assigned: %s", _describe(assigned))


def _describe(partitions) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(partitions)) or "none"
