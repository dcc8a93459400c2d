from otelml.component import Kind
from otelml.pdata import Signal
from otelml.processors.drain import metadata
from otelml.processors.drain.config import DrainConfig
from otelml.processors.drain.processor import DrainProcessor
from otelml.registry import Factory

factory = Factory(
    type="drain",
    kind=Kind.PROCESSOR,
    config_class=DrainConfig,
    create=DrainProcessor,
    signals=frozenset({Signal.LOGS}),
    metrics=metadata.METRICS,
)
