from otelml.component import Kind
from otelml.exporters.file.config import FileConfig
from otelml.exporters.file.exporter import FileExporter
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="file",
    kind=Kind.EXPORTER,
    config_class=FileConfig,
    create=FileExporter,
    signals=frozenset(Signal),
    stability="beta",
)
