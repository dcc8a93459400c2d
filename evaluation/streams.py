"""Labelled numeric series as OTLP log records, and scores read back from replay output.

Each series becomes one stream: log records with ``attributes.value`` set to
the reading, ``resource.service.name`` set to the series name, and the row's
own timestamp as the record time. A batch holds the next rows of every
series (one resource each), as a gateway sees many keys at once; each key's
records stay in order, so the scores are those of a stream of its own.

What a user receives is alerts, so the harness scores what the processor
alerts on: the score of each record that opens an incident
(``otelml.incident.open``), 0 for every other record (see :func:`read_alerts`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from evaluation.nab import LabelledSeries
from otelml.conventions import INCIDENT_OPEN, SCORE, SERVICE_NAME
from otelml.pdata import to_json

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


def write_streams(corpus: Iterable[LabelledSeries], path: Path) -> None:
    """One OTLP JSON line per batch, as the file exporter writes them."""
    with open(path, "wb") as output:
        for batch in corpus_batches(list(corpus)):
            output.write(to_json(batch) + b"\n")


def _attribute_value(attribute: dict):
    value = attribute.get("value", {})
    for kind in ("doubleValue", "intValue", "boolValue", "stringValue"):
        if kind in value:
            return value[kind]
    return None


def read_alerts(path: Path, key: str = SERVICE_NAME) -> dict[str, np.ndarray]:
    """Per stream, what the processor alerts on: each record's score where it opens an incident, else 0."""
    scores = read_scores(path, SCORE, key)
    opens = read_scores(path, INCIDENT_OPEN, key)
    return {name: np.where(opens[name] == 1.0, np.nan_to_num(values), 0.0) for name, values in scores.items()}


def read_scores(path: Path, attribute: str = SCORE, key: str = SERVICE_NAME) -> dict[str, np.ndarray]:
    """Per stream (resource ``key``), the ``attribute`` of every record in file order (NaN when absent).

    Reads replay output with plain JSON: this is evaluation, not a hot path.
    """
    scores: dict[str, list[float]] = {}
    with open(path, "rb") as lines:
        for line in lines:
            for resource in json.loads(line).get("resourceLogs", []):
                names = {a["key"]: _attribute_value(a) for a in resource.get("resource", {}).get("attributes", [])}
                stream = scores.setdefault(str(names.get(key)), [])
                for scope in resource.get("scopeLogs", []):
                    for record in scope.get("logRecords", []):
                        found = {a["key"]: _attribute_value(a) for a in record.get("attributes", [])}
                        value = found.get(attribute)
                        stream.append(float(value) if value is not None else np.nan)
    return {name: np.asarray(values) for name, values in scores.items()}
