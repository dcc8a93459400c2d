from otelml.component import Kind
from otelml.exporters.otlphttp.config import OTLPHTTPExporterConfig
from otelml.exporters.otlphttp.exporter import OTLPHTTPExporter
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="otlphttp",
    kind=Kind.EXPORTER,
    config_class=OTLPHTTPExporterConfig,
    create=OTLPHTTPExporter,
    signals=frozenset(Signal),
    stability="beta",
)
