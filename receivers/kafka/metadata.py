"""The Kafka receiver's internal metrics, with the contrib kafkareceiver's names (see ``otelml.telemetry``)."""

from otelml.telemetry import Metric

OFFSET_LAG = Metric(
    "otelcol_kafka_receiver_offset_lag",
    "gauge",
    "{messages}",
    ("receiver", "topic", "partition"),
    "Messages of a partition after the last one the pipeline took, as of the last fetch.",
)

METRICS = (OFFSET_LAG,)
