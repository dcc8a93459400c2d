from otelml.component import Kind
from otelml.exporters.alertmanager.config import AlertmanagerExporterConfig
from otelml.exporters.alertmanager.exporter import AlertmanagerExporter
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="alertmanager",
    kind=Kind.EXPORTER,
    config_class=AlertmanagerExporterConfig,
    create=AlertmanagerExporter,
    signals=frozenset({Signal.LOGS}),
)
