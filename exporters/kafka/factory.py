from otelml.component import Kind
from otelml.exporters.kafka.config import KafkaExporterConfig
from otelml.exporters.kafka.exporter import KafkaExporter
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="kafka",
    kind=Kind.EXPORTER,
    config_class=KafkaExporterConfig,
    create=KafkaExporter,
    signals=frozenset(Signal),
    stability="beta",
)
