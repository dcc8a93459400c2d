from otelml.component import Kind
from otelml.exporters.otlp.config import OTLPExporterConfig
from otelml.exporters.otlp.exporter import OTLPExporter
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="otlp",
    kind=Kind.EXPORTER,
    config_class=OTLPExporterConfig,
    create=OTLPExporter,
    signals=frozenset(Signal),
    stability="beta",
)
