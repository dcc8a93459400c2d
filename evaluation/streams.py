"""Labelled numeric series as OTLP log records, and scores read back from replay output.

Each series becomes one stream: log records with ``attributes.value`` set to
the reading, ``resource.service.name`` set to the series name, and the row's
own timestamp as the record time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from evaluation.nab import LabelledSeries
from otelml.pdata import to_json

ROWS_PER_BATCH = 1000


def series_batches(series: LabelledSeries, rows_per_batch: int = ROWS_PER_BATCH) -> Iterator[ExportLogsServiceRequest]:
    """The series as log batches of ``rows_per_batch`` records, in time order."""
    nanos = series.timestamps.astype("datetime64[ns]").astype(np.int64)
    for start in range(0, len(series.values), rows_per_batch):
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        name = resource_logs.resource.attributes.add()
        name.key = "service.name"
        name.value.string_value = series.name
        records = resource_logs.scope_logs.add().log_records
        for when, value in zip(nanos[start:start + rows_per_batch], series.values[start:start + rows_per_batch]):
            record = records.add()
            record.time_unix_nano = int(when)
            attribute = record.attributes.add()
            attribute.key = "value"
            attribute.value.double_value = float(value)
        yield request


def write_streams(corpus: Iterable[LabelledSeries], path: Path) -> None:
    """One OTLP JSON line per batch, as the file exporter writes them."""
    with open(path, "wb") as output:
        for series in corpus:
            for batch in series_batches(series):
                output.write(to_json(batch) + b"\n")


def _attribute_value(attribute: dict):
    value = attribute.get("value", {})
    for kind in ("doubleValue", "intValue", "boolValue", "stringValue"):
        if kind in value:
            return value[kind]
    return None


def read_scores(path: Path, attribute: str = "otelml.score", key: str = "service.name") -> dict[str, np.ndarray]:
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
