"""What a partition owner downstream of the Kafka receiver may ask of it (:class:`otelml.partitions.PartitionSource`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from otelml.encoding import BatchBuilder
from otelml.partitions import Partition
from otelml.pdata import Batch

_REPLAY_WAIT_MS = 500


class KafkaSource:
    """One Kafka receiver as its partition owners see it.

    Parameters
    ----------
    receiver_id
        The receiver's component ID.
    group_id
        Its consumer group.
    client_options
        aiokafka's connection arguments for its brokers.
    decode
        ``decode(partition, messages) -> BatchBuilder``: the receiver's own
        decoding of fetched messages (encoding, header extraction).
    state_saved
        Called with a partition when an owner saved its state.
    partitions_for
        ``await partitions_for(topic)``: the source topic's partition count.
    """

    def __init__(
        self,
        receiver_id: str,
        group_id: str,
        client_options: dict,
        decode: Callable[[TopicPartition, list], BatchBuilder],
        state_saved: Callable[[Partition], None],
        partitions_for: Callable,
    ):
        self.receiver_id = receiver_id
        self.group_id = group_id
        self.client_options = client_options
        self._decode = decode
        self._state_saved = state_saved
        self._partitions_for = partitions_for

    def state_saved(self, partition: Partition) -> None:
        self._state_saved(partition)

    async def partition_count(self, topic: str) -> int:
        return await self._partitions_for(topic)

    async def replay(self, partition: Partition, start: int, end: int) -> AsyncIterator[Batch]:
        """The batches at offsets ``start`` to ``end`` (excluded), read by a consumer of no group and decoded as live."""
        consumer = AIOKafkaConsumer(**self.client_options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        tp = TopicPartition(partition.topic, partition.partition)
        try:
            await consumer.start()
            consumer.assign([tp])
            consumer.seek(tp, start)
            while await consumer.position(tp) < end:
                fetched = await consumer.getmany(tp, timeout_ms=_REPLAY_WAIT_MS)
                messages = [message for message in fetched.get(tp, []) if message.offset < end]
                if messages:
                    builder = self._decode(tp, messages)
                    if builder.items:
                        yield builder.batch
        finally:
            await consumer.stop()
