"""The anomaly_metrics connector's internal metrics (see ``otelml.telemetry``)."""

from otelml.telemetry import Metric

OVERFLOW_RECORDS = Metric(
    "otelml_anomaly_metrics_overflow_records",
    "counter",
    "{records}",
    ("connector",),
    "Scored records counted in an overflow key (beyond max_keys).",
)
KEYS = Metric(
    "otelml_anomaly_metrics_keys", "gauge", "{keys}", ("connector",), "Keys the connector holds (overflow keys not included)."
)

METRICS = (OVERFLOW_RECORDS, KEYS)
