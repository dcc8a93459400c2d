from otelml.component import Kind
from otelml.connectors.anomaly_alerts import metadata
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.connectors.anomaly_alerts.connector import AnomalyAlertsConnector
from otelml.pdata import Signal
from otelml.registry import Factory

factory = Factory(
    type="anomaly_alerts",
    kind=Kind.CONNECTOR,
    config_class=AnomalyAlertsConfig,
    create=AnomalyAlertsConnector,
    connects=frozenset({(Signal.TRACES, Signal.LOGS), (Signal.LOGS, Signal.LOGS)}),
    metrics=metadata.METRICS,
)
