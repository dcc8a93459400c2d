from otelml.component import Kind
from otelml.pdata import Signal
from otelml.processors.batch import metadata
from otelml.processors.batch.config import BatchConfig
from otelml.processors.batch.processor import BatchProcessor
from otelml.registry import Factory

factory = Factory(
    type="batch",
    kind=Kind.PROCESSOR,
    config_class=BatchConfig,
    create=BatchProcessor,
    signals=frozenset(Signal),
    stability="beta",
    metrics=metadata.METRICS,
)
