from otelml.component import Kind
from otelml.pdata import Signal
from otelml.processors.memory_limiter import metadata
from otelml.processors.memory_limiter.config import MemoryLimiterConfig
from otelml.processors.memory_limiter.processor import MemoryLimiterProcessor
from otelml.registry import Factory

factory = Factory(
    type="memory_limiter",
    kind=Kind.PROCESSOR,
    config_class=MemoryLimiterConfig,
    create=MemoryLimiterProcessor,
    signals=frozenset(Signal),
    stability="beta",
    metrics=metadata.METRICS,
)
