from otelml.component import Kind
from otelml.exporters.prometheus.config import PrometheusExporterConfig
from otelml.exporters.prometheus.exporter import PrometheusExporter
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="prometheus",
    kind=Kind.EXPORTER,
    config_class=PrometheusExporterConfig,
    create=PrometheusExporter,
    signals=frozenset({Signal.METRICS}),
    stability="beta",
)
