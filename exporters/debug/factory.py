from otelml.component import Kind
from otelml.exporters.debug.config import DebugConfig
from otelml.exporters.debug.exporter import DebugExporter
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="debug",
    kind=Kind.EXPORTER,
    config_class=DebugConfig,
    create=DebugExporter,
    signals=frozenset(Signal),
    stability="development",
)
