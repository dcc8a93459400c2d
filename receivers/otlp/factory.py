from otelml.component import Kind
from otelml.pdata import Signal
from otelml.receivers.otlp.config import OTLPReceiverConfig
from otelml.receivers.otlp.receiver import OTLPReceiver
from otelml.registry import Factory

factory = Factory(
    type="otlp",
    kind=Kind.RECEIVER,
    config_class=OTLPReceiverConfig,
    create=OTLPReceiver,
    signals=frozenset(Signal),
    stability="beta",
)
