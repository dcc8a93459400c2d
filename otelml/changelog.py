"""A state changelog: a compacted Kafka topic that keeps the latest state of every key, per source partition.

Kafka Streams and Quix Streams keep their state stores this way; it lets the
state of a source partition follow the partition to whichever consumer of
the group owns it next. The changelog has as many partitions as the source
topic, and source partition *p* writes to changelog partition *p*.

A write (:meth:`Changelog.write`) is a set of key values, each carrying the
source offset its state is complete up to, followed, once they are all
acknowledged, by a marker record for the partition. A restore
(:meth:`Changelog.read`) reads the changelog partition to its end and keeps,
per key, the last value written for source offsets up to the group's
committed offset (``as_of``): a value written for records after it comes
from a member that died before committing them, and those records are read
again. The marker says up to which source offset the state is complete,
so the records after it can be replayed.

Record keys are ``<partition>:<key>`` for values (a ``None`` value deletes
the key) and ``<partition>`` for markers, whose value is the offset as text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from otelml.errors import RetryableError

# Carries, on every value record, the source offset its state is complete up to.
OFFSET_HEADER = "otelml.source.offset"
_ILLEGAL_TOPIC_CHARACTERS = re.compile(r"[^a-zA-Z0-9._-]")
_READ_WAIT_MS = 500


def changelog_topic(group_id: str, component_id: str) -> str:
    """``<group_id>.<component id>.changelog``, ``/`` becoming ``.`` and other characters Kafka refuses ``_``.

    >>> changelog_topic("otelml-gateway", "anomaly/spans")
    'otelml-gateway.anomaly.spans.changelog'
    """
    name = f"{group_id}.{component_id.replace('/', '.')}.changelog"
    return _ILLEGAL_TOPIC_CHARACTERS.sub("_", name)


class ChangelogError(Exception):
    """The changelog topic exists but cannot serve its source (another partition count)."""


@dataclasses.dataclass
class Restored:
    """One changelog partition as of a source offset: the latest value of each key, and the offset the state is complete up to.

    ``offset`` is None when no write for an offset up to ``as_of`` was completed.
    """

    values: dict[bytes, bytes]
    offset: int | None


class Changelog:
    """One changelog topic, written with acknowledged produce and read back per partition.

    Parameters
    ----------
    client_options
        aiokafka's connection arguments (brokers, TLS, SASL), as
        ``KafkaClientConfig.client_options()`` gives them.
    topic
        The changelog topic, see :func:`changelog_topic`.
    replication_factor
        Replicas of each partition when the topic is created.
    """

    def __init__(self, client_options: dict, topic: str, replication_factor: int = 1):
        self.client_options = client_options
        self.topic = topic
        self.replication_factor = replication_factor
        self.policy = ""
        self._producer: AIOKafkaProducer | None = None

    async def start(self, partitions: int) -> None:
        """Create the topic when missing (``cleanup.policy=compact``, ``partitions`` partitions) and connect.

        Raises :class:`ChangelogError` when it exists with another partition
        count, :class:`~otelml.errors.RetryableError` when the brokers cannot
        be reached. :attr:`policy` tells the cleanup policy found.
        """
        admin = AIOKafkaAdminClient(**self.client_options)
        try:
            await admin.start()
            # Created before any client asks for its metadata: some brokers create a topic they are asked about.
            response = await admin.create_topics(
                [NewTopic(self.topic, partitions, self.replication_factor, topic_configs={"cleanup.policy": "compact"})]
            )
            _, code, message = response.topic_errors[0][:3]
            if code and code != TopicAlreadyExistsError.errno:
                raise RetryableError(f"cannot create the changelog topic {self.topic}: {message or code}")
            described = await admin.describe_topics([self.topic])
            found = len(described[0]["partitions"])
            if found != partitions:
                raise ChangelogError(
                    f"the changelog topic {self.topic} has {found} partitions, its source {partitions}: "
                    f"state would be restored from the wrong partitions; delete it or give the processor another ID"
                )
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, self.topic)])
            self.policy = next((entry[1] for entry in configs[0].resources[0][4] if entry[0] == "cleanup.policy"), "")
        except KafkaError as error:
            raise RetryableError(f"cannot prepare the changelog topic {self.topic}: {error}") from error
        finally:
            await admin.close()
        if self._producer is None:
            producer = AIOKafkaProducer(**self.client_options, acks="all")
            try:
                await producer.start()
            except KafkaError as error:
                await producer.stop()
                raise RetryableError(f"cannot reach the brokers for {self.topic}: {error}") from error
            self._producer = producer

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "the changelog is written before start()"
        return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def write(self, partition: int, values: Mapping[bytes, bytes | None], offset: int) -> None:
        """Write ``values`` (None deletes a key) as the state of ``partition`` complete up to source ``offset``.

        Returns once the brokers acknowledged every record and then the marker;
        raises :class:`~otelml.errors.RetryableError` otherwise (write it again).
        """
        prefix = b"%d:" % partition
        headers = [(OFFSET_HEADER, str(offset).encode())]
        try:
            deliveries = [
                await self.producer.send(self.topic, value, key=prefix + key, partition=partition, headers=headers)
                for key, value in values.items()
            ]
            for delivery in deliveries:
                await delivery
            # The marker only once every value is in: a restore trusts values up to the last marker.
            await (await self.producer.send(self.topic, str(offset).encode(), key=b"%d" % partition, partition=partition))
        except KafkaError as error:
            raise RetryableError(f"cannot write the changelog {self.topic}[{partition}]: {error}") from error

    async def read(self, partition: int, as_of: int | None = None) -> Restored:
        """The state of ``partition`` as of source offset ``as_of`` (None: the latest written), read to the partition's end."""
        consumer = AIOKafkaConsumer(**self.client_options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        values: dict[bytes, bytes] = {}
        complete: int | None = None
        prefix, marker = b"%d:" % partition, b"%d" % partition
        try:
            await consumer.start()
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < end:
                fetched = await consumer.getmany(tp, timeout_ms=_READ_WAIT_MS)
                for record in fetched.get(tp, []):
                    if record.key == marker:
                        offset = int(record.value)
                        if as_of is None or offset <= as_of:
                            complete = offset if complete is None else max(complete, offset)
                    elif record.key is not None and record.key.startswith(prefix):
                        if as_of is not None and _source_offset(record.headers) > as_of:
                            continue
                        key = record.key[len(prefix) :]
                        if record.value is None:
                            values.pop(key, None)
                        else:
                            values[key] = record.value
        except KafkaError as error:
            raise RetryableError(f"cannot read the changelog {self.topic}[{partition}]: {error}") from error
        finally:
            await consumer.stop()
        return Restored(values, complete)


def _source_offset(headers) -> int:
    for name, value in headers or ():
        if name == OFFSET_HEADER:
            return int(value)
    return -1
