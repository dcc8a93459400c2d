from otelml.component import Kind
from otelml.connectors.anomaly_metrics import metadata
from otelml.connectors.anomaly_metrics.config import AnomalyMetricsConfig
from otelml.connectors.anomaly_metrics.connector import AnomalyMetricsConnector
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="anomaly_metrics",
    kind=Kind.CONNECTOR,
    config_class=AnomalyMetricsConfig,
    create=AnomalyMetricsConnector,
    connects=frozenset({(Signal.TRACES, Signal.METRICS), (Signal.LOGS, Signal.METRICS), (Signal.METRICS, Signal.METRICS)}),
    metrics=metadata.METRICS,
)
