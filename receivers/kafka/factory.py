from otelml.component import Kind
from otelml.pdata import Signal
from otelml.receivers.kafka import metadata
from otelml.receivers.kafka.config import KafkaReceiverConfig
from otelml.receivers.kafka.receiver import KafkaReceiver
from otelml.registry import Factory

factory = Factory(
    type="kafka",
    kind=Kind.RECEIVER,
    config_class=KafkaReceiverConfig,
    create=KafkaReceiver,
    signals=frozenset(Signal),
    stability="beta",
    metrics=metadata.METRICS,
)
