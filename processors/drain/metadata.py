"""The drain processor's internal metrics: the collector-contrib drain processor's, and evictions (see ``otelml.telemetry``)."""

from otelml.telemetry import Metric

ANNOTATED = Metric(
    "otelcol_processor_drain_log_records_annotated",
    "counter",
    "{records}",
    ("processor",),
    "Log records annotated with a template.",
)
UNANNOTATED = Metric(
    "otelcol_processor_drain_log_records_unannotated",
    "counter",
    "{records}",
    ("processor",),
    "Log records not annotated: empty body, or warmup suppression active.",
)
CLUSTERS_ACTIVE = Metric(
    "otelcol_processor_drain_clusters_active", "gauge", "{clusters}", ("processor",), "Clusters (templates) held, over all keys."
)
EVICTED = Metric(
    "otelml_drain_evicted_clusters",
    "counter",
    "{clusters}",
    ("processor",),
    "Clusters dropped as least recently used at max_clusters, or as least seen in a full leaf.",
)

METRICS = (ANNOTATED, UNANNOTATED, CLUSTERS_ACTIVE, EVICTED)
