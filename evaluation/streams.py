"""Labelled numeric series as OTLP log records.

Each series becomes one stream: log records with ``attributes.value`` set to
the reading, ``resource.service.name`` set to the series name, and the row's
own timestamp as the record time. A batch holds the next rows of every
series (one resource each), as a gateway sees many keys at once; each key's
records stay in order, so the scores are those of a stream of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from evaluation.nab import LabelledSeries
from otelml.conventions import SERVICE_NAME

ROWS_PER_BATCH = 1000


def corpus_batches(corpus: list[LabelledSeries], rows_per_batch: int = ROWS_PER_BATCH) -> Iterator[ExportLogsServiceRequest]:
    """Log batches holding the next ``rows_per_batch`` rows of every series, each series one resource."""
    longest = max((len(series.values) for series in corpus), default=0)
    nanos = [series.timestamps.astype("datetime64[ns]").astype(np.int64) for series in corpus]
    for start in range(0, longest, rows_per_batch):
        request = ExportLogsServiceRequest()
        for series, times in zip(corpus, nanos):
            rows = slice(start, start + rows_per_batch)
            if start >= len(series.values):
                continue
            resource_logs = request.resource_logs.add()
            name = resource_logs.resource.attributes.add()
            name.key = SERVICE_NAME
            name.value.string_value = series.name
            records = resource_logs.scope_logs.add().log_records
            for when, value in zip(times[rows].tolist(), series.values[rows].tolist()):
                record = records.add()
                record.time_unix_nano = when
                attribute = record.attributes.add()
                attribute.key = "value"
                attribute.value.double_value = value
        yield request
