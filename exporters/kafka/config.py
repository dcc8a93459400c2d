from __future__ import annotations

from typing import Literal

from pydantic import Field

from otelml.configkafka import KafkaClientConfig, topic_problem
from otelml.configmodel import ComponentConfig
from otelml.encoding import Encoding, encoding_problems
from otelml.exporterhelper import ExporterHelperConfig
from otelml.pdata import Signal
from otelml.references import check_signal, parse_key

# The collector's per-signal keying setting that partition_by replaces.
_COLLECTOR_KEYING = {
    Signal.TRACES: "partition_traces_by_id",
    Signal.LOGS: "partition_logs_by_resource_attributes",
    Signal.METRICS: "partition_metrics_by_resource_attributes",
}


class TopicConfig(ComponentConfig):
    topic: str
    encoding: Encoding = Encoding.OTLP_PROTO
    # Record references whose joined values key each message (the anomaly processor's key).
    partition_by: list[str] = []


class TracesTopic(TopicConfig):
    topic: str = "otlp_spans"


class LogsTopic(TopicConfig):
    topic: str = "otlp_logs"


class MetricsTopic(TopicConfig):
    topic: str = "otlp_metrics"


class ProducerConfig(ComponentConfig):
    # The broker's default message.max.bytes, as the collector's default.
    max_message_bytes: int = Field(1_000_000, ge=1024)
    # 0: no acknowledgement, 1: the leader's, -1: every in-sync replica's.
    required_acks: Literal[0, 1, -1] = 1
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"


class KafkaExporterConfig(ExporterHelperConfig, KafkaClientConfig):
    traces: TracesTopic = TracesTopic()
    logs: LogsTopic = LogsTopic()
    metrics: MetricsTopic = MetricsTopic()
    # A resource attribute whose value, when present, names the topic for that resource.
    topic_from_attribute: str = ""
    partition_traces_by_id: bool = False
    partition_logs_by_resource_attributes: bool = False
    partition_metrics_by_resource_attributes: bool = False
    producer: ProducerConfig = ProducerConfig()

    def topic_of(self, signal: Signal) -> TopicConfig:
        return getattr(self, signal.value)

    def validate_config(self) -> list[str]:
        problems = ExporterHelperConfig.validate_config(self) + KafkaClientConfig.validate_config(self)
        problems += encoding_problems({signal: self.topic_of(signal).encoding for signal in Signal})
        problems += [
            f"{signal.value}::topic: {problem}"
            for signal in Signal
            if (problem := topic_problem(self.topic_of(signal).topic)) is not None
        ]
        for signal in Signal:
            problems += self._partition_by_problems(signal)
        return problems

    def _partition_by_problems(self, signal: Signal) -> list[str]:
        references = self.topic_of(signal).partition_by
        path = f"{signal.value}::partition_by"
        if not references:
            return []
        if signal is Signal.METRICS:
            return [f"{path}: not supported for metrics (use partition_metrics_by_resource_attributes)"]
        problems = []
        if getattr(self, _COLLECTOR_KEYING[signal]):
            problems.append(f"{path}: conflicts with {_COLLECTOR_KEYING[signal]}: true (a message has one key); set one of them")
        for index, text in enumerate(references):
            try:
                check_signal(parse_key(text), signal)
            except ValueError as error:
                problems.append(f"{path}::{index}: {error}")
        if len(set(references)) < len(references):
            problems.append(f"{path}: lists a reference more than once")
        return problems
