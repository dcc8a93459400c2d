"""The shared vocabulary: every attribute name otelml writes or reads, in one place.

Components import these names instead of spelling them; a name changes here
or nowhere. Output attributes of the ``anomaly`` processor start with
:data:`PREFIX`, so a record scored upstream (or replayed) can have them
replaced. Their meaning is documented in ``processors/anomaly/README.md``.
"""

from __future__ import annotations

PREFIX = "otelml."

# OpenTelemetry semantic conventions that otelml reads.
SERVICE_NAME = "service.name"

# On every scored record.
SCORE = "otelml.score"  # calibrated composite score in [0, 1]
ANOMALY = "otelml.anomaly"  # score >= threshold, after warmup
EXPECTED = "otelml.expected"  # the models' prediction, in the target's units
FORECAST = "otelml.forecast"  # the score's trend line at the horizon
SLOPE = "otelml.trend.slope"  # that line's slope, score per second
PREDICTED = "otelml.incident.predicted"  # a predicted incident (see the README)
MODEL_SCORE = "otelml.score."  # + model id: each model's own score (verbose)

# Incidents: a key's run of anomalous records, decided by the processor.
INCIDENT_ID = "otelml.incident.id"  # on every record of an incident
INCIDENT_OPEN = "otelml.incident.open"  # true on the record that opens it

# Alert details, on records that open an incident or predict one (``alerts: true``).
KEY = "otelml.key"  # the key, e.g. "service.name=checkout span.name=GET /cart"
TARGET = "otelml.target"  # what was measured, e.g. "duration", "attributes.temperature"
UNIT = "otelml.unit"  # its unit, e.g. "ms", "1/s", "" when given as is
ACTUAL = "otelml.actual"  # the measured value, in the target's units
RANGE_LOW = "otelml.range.low"  # the usual range the models had for it
RANGE_HIGH = "otelml.range.high"
MODELS = "otelml.models"  # the models whose own score reached the threshold
LEVEL_RECENT = (
    "otelml.level.recent"  # a level model that fired (level_shift, burst, lull): the key's recent level, in the target's units
)
LEVEL_USUAL = "otelml.level.usual"  # and the long-run level it was held against
TARGET_FORECAST = "otelml.target.forecast"  # the target's own trend line at the horizon, in its units
LIMIT = "otelml.limit"  # a configured trend.limit the forecast crosses
CROSSING_SECONDS = "otelml.limit.crossing_seconds"  # time until the target's trend crosses it

# Scores written as metrics (the processor on metrics, the anomaly_metrics connector).
METRIC = "otelml.metric"  # the scored metric's name, on otelml.* gauges
STATISTIC = "otelml.statistic"  # what of a histogram was scored: "mean", or a quantile such as "p99"
OVERFLOW_KEY = "overflow"  # the otelml.key of the series that takes keys beyond max_keys

# Metrics of the anomaly_metrics connector, each under its namespace (default "otelml.records").
METRICS_SCOPE = "otelml.anomaly_metrics"
RECORDS_NAMESPACE = "otelml.records"
RECORDS_SCORE = "score"  # histogram of otelml.score
RECORDS_ANOMALIES = "anomalies"  # records with otelml.anomaly
RECORDS_INCIDENTS = "incidents"  # records with otelml.incident.open
RECORDS_PREDICTED = "incidents.predicted"  # records with otelml.incident.predicted
RECORDS_FORECAST = "forecast"  # the latest otelml.forecast

# Log templates (the drain processor).
TEMPLATE = "log.record.template"
TEMPLATE_ID = "log.record.template.id"

# Alert log records (the anomaly_alerts connector; read by the alertmanager exporter).
ALERT_EVENT = "otelml.alert"
ALERT_SCOPE = "otelml.anomaly_alerts"
SOURCE_SPAN_NAME = "otelml.source.span.name"
ALERT_NAME = "otelml.alert.name"  # AnomalyIncident or PredictedIncident (Alertmanager's alertname)
ALERT_STATUS = "otelml.alert.status"  # firing (an incident opens or goes on) or resolved
ALERT_KEYS = "otelml.alert.keys"  # the keys whose incidents a grouped alert covers, the opening one first
INCIDENT_DURATION = "otelml.incident.duration"  # seconds from the incident's first record to the alert's time
