from otelml.component import Kind
from otelml.pdata import Signal
from otelml.processors.anomaly import metadata
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.processor import AnomalyProcessor
from otelml.registry import Factory


def create(settings, config: AnomalyConfig, signal: Signal, next_consumer) -> AnomalyProcessor:
    return AnomalyProcessor(settings, config, signal, next_consumer)


factory = Factory(
    type="anomaly",
    kind=Kind.PROCESSOR,
    config_class=AnomalyConfig,
    create=create,
    signals=frozenset(Signal),
    metrics=metadata.METRICS,
)
