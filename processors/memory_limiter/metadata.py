"""The memory limiter's internal metrics, with the collector's names (see ``otelml.telemetry``)."""

from otelml.telemetry import per_signal

REFUSED = per_signal(
    "otelcol_processor_refused_{items}", "counter", ("processor",), "Items refused by the processor; the sender may retry them."
)

METRICS = tuple(REFUSED.values())
