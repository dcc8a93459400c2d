"""The anomaly_alerts connector's internal metrics (see ``otelml.telemetry``)."""

from otelml.telemetry import Metric

ALERTS = Metric("otelml_anomaly_alerts", "counter", "{log_records}", ("connector", "kind"),
                "Alert log records sent, by kind (anomaly, predicted_incident).")

METRICS = (ALERTS,)
