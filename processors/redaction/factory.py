from otelml.component import Kind
from otelml.pdata import Signal
from otelml.processors.redaction.config import RedactionConfig
from otelml.processors.redaction.processor import RedactionProcessor
from otelml.registry import Factory

factory = Factory(
    type="redaction",
    kind=Kind.PROCESSOR,
    config_class=RedactionConfig,
    create=RedactionProcessor,
    signals=frozenset(Signal),
)
