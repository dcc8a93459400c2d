from otelml.component import Kind
from otelml.pdata import Signal
from otelml.receivers.mqtt.config import MQTTReceiverConfig
from otelml.receivers.mqtt.receiver import MQTTReceiver
from otelml.registry import Factory

factory = Factory(
    type="mqtt",
    kind=Kind.RECEIVER,
    config_class=MQTTReceiverConfig,
    create=MQTTReceiver,
    signals=frozenset({Signal.LOGS, Signal.TRACES}),
    stability="alpha",
)
