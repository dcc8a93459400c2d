"""The anomaly processor's internal metrics (see ``otelml.telemetry``)."""

from otelml.telemetry import Metric

ANOMALIES = Metric("otelml_anomaly_anomalies", "counter", "{records}", ("processor",), "Records flagged as anomalies.")
INCIDENTS = Metric("otelml_anomaly_incidents", "counter", "{incidents}", ("processor",), "Incidents opened.")
PREDICTED = Metric(
    "otelml_anomaly_predicted_incidents",
    "counter",
    "{records}",
    ("processor",),
    "Records whose trend forecast crosses the threshold or the limit.",
)
UNSCORED = Metric(
    "otelml_anomaly_unscored_records",
    "counter",
    "{records}",
    ("processor",),
    "Records passed on unscored: their target is missing, not numeric, or has no value yet.",
)
EVICTED = Metric(
    "otelml_anomaly_evicted_keys",
    "counter",
    "{keys}",
    ("processor", "reason"),
    "Keys whose learned state was dropped, by reason (lru, ttl).",
)
RESETS = Metric(
    "otelml_anomaly_model_resets", "counter", "{models}", ("processor", "model"), "River models of a key replaced for diverging."
)
KEYS = Metric("otelml_anomaly_keys", "gauge", "{keys}", ("processor",), "Keys with learned state.")

METRICS = (ANOMALIES, INCIDENTS, PREDICTED, UNSCORED, EVICTED, RESETS, KEYS)
