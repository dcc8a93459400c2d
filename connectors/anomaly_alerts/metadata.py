"""The anomaly_alerts connector's internal metrics (see ``otelml.telemetry``)."""

from otelml.telemetry import Metric

ALERTS = Metric(
    "otelml_anomaly_alerts",
    "counter",
    "{log_records}",
    ("connector", "kind", "event"),
    "Alert log records made, by kind (anomaly, predicted_incident) and event (open, update, resolve).",
)

METRICS = (ALERTS,)
