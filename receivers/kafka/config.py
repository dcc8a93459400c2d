from __future__ import annotations

from typing import Literal

from pydantic import Field

from otelml.configkafka import KafkaClientConfig, topic_problem
from otelml.configmodel import ComponentConfig, Duration
from otelml.configretry import RetryConfig
from otelml.encoding import Encoding, encoding_problems
from otelml.pdata import Signal
from otelml.receiverhelper import DEFAULT_ERROR_BACKOFF


class TopicsConfig(ComponentConfig):
    topics: list[str]
    encoding: Encoding = Encoding.OTLP_PROTO

    unsupported_keys = {"exclude_topics": "topics are names, not regular expressions: list the topics to read"}


class TracesTopics(TopicsConfig):
    topics: list[str] = ["otlp_spans"]


class LogsTopics(TopicsConfig):
    topics: list[str] = ["otlp_logs"]


class MetricsTopics(TopicsConfig):
    topics: list[str] = ["otlp_metrics"]


class HeaderExtractionConfig(ComponentConfig):
    extract_headers: bool = False
    # Header names to copy; each becomes the resource attribute kafka.header.<name>.
    headers: list[str] = []


class MessageMarkingConfig(ComponentConfig):
    # True: commit after the pipeline accepted (at-least-once); False: before (at-most-once).
    after: bool = True

    unsupported_keys = dict.fromkeys(
        ("on_error", "on_permanent_error"),
        "a batch refused for good is committed (and counted as dropped), one refused for now is retried "
        "with error_backoff and never committed: remove it",
    )


class KafkaReceiverConfig(KafkaClientConfig):
    group_id: str = "otelml"
    initial_offset: Literal["latest", "earliest"] = "latest"
    session_timeout: Duration = 10.0
    heartbeat_interval: Duration = 3.0
    traces: TracesTopics = TracesTopics()
    logs: LogsTopics = LogsTopics()
    metrics: MetricsTopics = MetricsTopics()
    header_extraction: HeaderExtractionConfig = HeaderExtractionConfig()
    message_marking: MessageMarkingConfig = MessageMarkingConfig()
    error_backoff: RetryConfig = DEFAULT_ERROR_BACKOFF
    # Messages fetched at most per poll; one poll's messages of a partition become one batch.
    max_fetch_records: int = Field(500, ge=1)
    # How long the broker may hold a fetch while it has less than one message.
    max_fetch_wait: Duration = 0.25
    # Bytes fetched at most per partition and request; a larger message is still fetched whole.
    default_fetch_size: int = Field(1_048_576, ge=1024)

    unsupported_keys = {
        "topic": "the single-topic form is gone: list the topics per signal (traces::topics, logs::topics, metrics::topics)",
        "encoding": "set the encoding per signal (traces::encoding, logs::encoding, metrics::encoding)",
        "profiles": "otelml has no profiles signal: remove it",
        "autocommit": "offsets are committed after the pipeline accepted a batch (message_marking::after): remove it",
        "group_rebalance_strategy": "partitions are assigned round-robin: remove it",
        "group_rebalance_strategies": "partitions are assigned round-robin: remove it",
        "group_instance_id": "static group membership is not supported: remove it",
        "max_partition_fetch_size": "it is named default_fetch_size here",
        "min_fetch_size": "the broker answers as soon as it has a message (max_fetch_wait bounds the wait): remove it",
        "max_fetch_size": "bound a fetch with default_fetch_size (bytes per partition) and max_fetch_records",
        "use_leader_epoch": "remove it",
        "partition_processing": "each partition is processed in a task of its own already: remove it",
        "telemetry": "the receiver's metrics follow service::telemetry::metrics::level: remove it",
    }

    def topics_of(self, signal: Signal) -> TopicsConfig:
        return getattr(self, signal.value)

    def validate_config(self) -> list[str]:
        problems = super().validate_config()
        if not self.group_id:
            problems.append("group_id: must not be empty")
        if self.max_fetch_wait <= 0:
            problems.append("max_fetch_wait: must be positive")
        if self.session_timeout <= 0:
            problems.append("session_timeout: must be positive")
        if not 0 < self.heartbeat_interval < self.session_timeout:
            problems.append("heartbeat_interval: must be positive and shorter than session_timeout")
        problems += encoding_problems({signal: self.topics_of(signal).encoding for signal in Signal})
        owners: dict[str, Signal] = {}
        for signal in Signal:
            section = self.topics_of(signal)
            if not section.topics:
                problems.append(f"{signal.value}::topics: at least one topic is required")
            for index, topic in enumerate(section.topics):
                if (problem := topic_problem(topic)) is not None:
                    problems.append(f"{signal.value}::topics::{index}: {problem}")
                elif topic in owners:
                    # A message must decode as one signal: the topic says which.
                    problems.append(f"{signal.value}::topics: {topic!r} is already a {owners[topic].value} topic")
                owners.setdefault(topic, signal)
        return problems
