"""The Kafka exporter: writes batches to topics and returns once the brokers acknowledged them."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from otelml.component import CreateSettings, Host
from otelml.errors import PermanentError, RetryableError
from otelml.exporterhelper import PartialSuccess, QueuedRetryExporter
from otelml.exporters.kafka.config import KafkaExporterConfig
from otelml.exporters.kafka.messages import (
    Message,
    Payload,
    fit,
    group_resources,
    resource_key,
    split_by_references,
    split_by_trace_id,
)
from otelml.pdata import Batch, Signal
from otelml.references import KeyReader, parse_key

# The producer's own default, used when the exporter has no timeout.
_DEFAULT_REQUEST_TIMEOUT = 40.0


class KafkaExporter(QueuedRetryExporter):
    config: KafkaExporterConfig

    def __init__(self, settings: CreateSettings, config: KafkaExporterConfig):
        super().__init__(settings, config)
        self._options: dict = {}
        self._producer: AIOKafkaProducer | None = None
        self._connecting = asyncio.Lock()
        # Per signal with partition_by: the reader of its key references.
        self._key_readers = {
            signal: KeyReader([parse_key(text) for text in config.topic_of(signal).partition_by])
            for signal in Signal
            if config.topic_of(signal).partition_by
        }

    async def start_exporting(self, host: Host) -> None:
        # Built now so that bad TLS files fail the start; the brokers are
        # reached on the first export, so the service starts while they are down.
        self._options = self.config.client_options()

    async def stop_exporting(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def export(self, batch: Batch) -> PartialSuccess | None:
        messages, oversized = self.messages(batch)
        problems = []
        if oversized:
            largest = max(payload.size for payload in oversized)
            limit = self.config.producer.max_message_bytes
            problems.append(f"{len(oversized)} messages over max_message_bytes ({limit}), the largest {largest} bytes")
        refused_by_brokers = await self._deliver(messages) if messages else []
        if refused_by_brokers:
            problems.append(f"the brokers refused {len(refused_by_brokers)} messages as too large")
        if not problems:
            return None
        if len(refused_by_brokers) == len(messages):  # nothing was sent
            raise PermanentError("; ".join(problems))
        # What is too large for any message does not take the rest of its batch down with it.
        refused = sum(payload.items for payload in oversized) + sum(message.items for message in refused_by_brokers)
        return PartialSuccess(refused, "; ".join(problems), reason="permanent_error")

    async def _deliver(self, messages: list[Message]) -> list[Message]:
        """Send ``messages`` and wait for their acknowledgements; returns those the brokers refused as too large."""
        producer = await self._connected_producer()
        deliveries = []
        try:
            for message in messages:
                deliveries.append(await producer.send(message.topic, message.value, key=message.key))
        except BaseException as error:
            # The batch is sent again whole; what was already handed over may still arrive.
            for delivery in deliveries:
                delivery.add_done_callback(_read_outcome)
            if isinstance(error, MessageSizeTooLargeError):
                raise PermanentError(str(error)) from error
            if isinstance(error, KafkaError):
                raise RetryableError(f"cannot send to Kafka: {error}") from error
            raise
        # Every outcome is collected, so that no failed delivery goes unread.
        results = await asyncio.gather(*deliveries, return_exceptions=True)
        failures = [(message, result) for message, result in zip(messages, results) if isinstance(result, BaseException)]
        retryable = [result for _, result in failures if not isinstance(result, MessageSizeTooLargeError)]
        if retryable:
            raise RetryableError(
                f"{len(failures)} of {len(messages)} messages were not acknowledged: {retryable[0]!r}"
            ) from retryable[0]
        # The brokers' own limit may be lower than max_message_bytes: what they refuse as too large stays refused.
        return [message for message, _ in failures]

    def messages(self, batch: Batch) -> tuple[list[Message], list[Payload]]:
        """The messages that carry ``batch`` (by topic, then key, then size), and the payloads too large for any."""
        signal = Signal.of(batch)
        section = self.config.topic_of(signal)
        limit = self.config.producer.max_message_bytes
        messages, oversized = [], []
        for topic, part in self._by_topic(batch, section.topic).items():
            for key, piece in self._by_key(part, signal).items():
                for payload in fit(piece, section.encoding, key, limit):
                    if payload.size > limit:
                        oversized.append(payload)
                    else:
                        messages.append(Message(topic, key, payload.value, payload.items))
        return messages, oversized

    def _by_topic(self, batch: Batch, default_topic: str) -> dict[str, Batch]:
        attribute = self.config.topic_from_attribute
        if not attribute:
            return {default_topic: batch}

        def topic_of(resource) -> str:
            for kv in resource.resource.attributes:
                if kv.key == attribute and kv.value.string_value:
                    return kv.value.string_value
            return default_topic

        return group_resources(batch, topic_of)

    def _by_key(self, batch: Batch, signal: Signal) -> dict[bytes | None, Batch]:
        config = self.config
        if signal in self._key_readers:
            return {key: piece for key, piece in split_by_references(batch, self._key_readers[signal]).items()}
        if signal is Signal.TRACES and config.partition_traces_by_id:
            # Keyed by the hex trace ID, as the collector does.
            return {trace_id.hex().encode(): piece for trace_id, piece in split_by_trace_id(batch).items()}
        if (signal is Signal.LOGS and config.partition_logs_by_resource_attributes) or (
            signal is Signal.METRICS and config.partition_metrics_by_resource_attributes
        ):
            return dict(group_resources(batch, lambda resource: resource_key(resource.resource)))
        return {None: batch}

    async def _connected_producer(self) -> AIOKafkaProducer:
        async with self._connecting:
            if self._producer is None:
                producer = self._new_producer()
                try:
                    await producer.start()
                except BaseException as error:
                    await producer.stop()
                    if isinstance(error, KafkaError):
                        raise RetryableError(f"cannot reach the brokers {','.join(self.config.brokers)}: {error}") from error
                    raise
                self._producer = producer
            return self._producer

    def _new_producer(self) -> AIOKafkaProducer:
        producer = self.config.producer
        # Unsent records expire with the export attempt that sent them, so
        # that an outage does not pile up records the retry sends again.
        request_timeout = self.config.timeout or _DEFAULT_REQUEST_TIMEOUT
        return AIOKafkaProducer(
            **self._options,
            acks="all" if producer.required_acks == -1 else producer.required_acks,
            compression_type=None if producer.compression == "none" else producer.compression,
            max_request_size=producer.max_message_bytes,
            request_timeout_ms=int(request_timeout * 1000),
        )


def _read_outcome(delivery: asyncio.Future) -> None:
    """Mark an abandoned delivery's error as seen, so asyncio does not report it."""
    if not delivery.cancelled():
        delivery.exception()
