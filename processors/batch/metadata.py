"""The batch processor's internal metrics, with the collector's names (see ``otelml.telemetry``)."""

from otelml.telemetry import Metric

SIZE_TRIGGER_SEND = Metric(
    "otelcol_processor_batch_batch_size_trigger_send",
    "counter",
    "{batches}",
    ("processor",),
    "Batches sent because they reached send_batch_size.",
)
TIMEOUT_TRIGGER_SEND = Metric(
    "otelcol_processor_batch_timeout_trigger_send",
    "counter",
    "{batches}",
    ("processor",),
    "Batches sent because the timeout passed.",
)

METRICS = (SIZE_TRIGGER_SEND, TIMEOUT_TRIGGER_SEND)
