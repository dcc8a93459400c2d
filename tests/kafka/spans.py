"""Spans of a steady service mesh for the scale-out tests: one span per key and round, with spikes where asked."""

from __future__ import annotations

import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml import conventions
from otelml.encoding import any_value_to_python

SERVICES, OPERATIONS = 4, 3
KEYS = [(f"service-{s}", f"op-{o}") for s in range(SERVICES) for o in range(OPERATIONS)]
START_NS = 1_700_000_000_000_000_000
ROUND_NS = 1_000_000_000


def span_id(round_number: int, key_index: int) -> bytes:
    return (round_number * 1000 + key_index + 1).to_bytes(8, "big")


def rounds(first: int, count: int, spikes: frozenset[tuple[int, int]] = frozenset()) -> ExportTraceServiceRequest:
    """Rounds ``first`` to ``first + count - 1``: one span per key each, about 50 ms (seeded noise, the same on every call).

    ``spikes`` holds (round, key index) pairs whose span takes 40 times as long.
    """
    batch = ExportTraceServiceRequest()
    scopes = {}
    for service in range(SERVICES):
        resource = batch.resource_spans.add()
        resource.resource.attributes.add(key="service.name").value.string_value = f"service-{service}"
        scopes[f"service-{service}"] = resource.scope_spans.add()
    for round_number in range(first, first + count):
        for index, (service, operation) in enumerate(KEYS):
            noise = random.Random(round_number * 7919 + index).gauss(0, 1)
            millis = 50 * (1 + 0.1 * noise) * (40 if (round_number, index) in spikes else 1)
            end = START_NS + round_number * ROUND_NS
            scopes[service].spans.add(
                trace_id=span_id(round_number, index) * 2,
                span_id=span_id(round_number, index),
                name=operation,
                start_time_unix_nano=end - int(millis * 1e6),
                end_time_unix_nano=end,
            )
    return batch


def scores(batches) -> dict[bytes, tuple[float, bool]]:
    """(score, anomaly) of every scored span of ``batches`` by span ID (a span scored twice keeps its last)."""
    found = {}
    for batch in batches:
        for resource in batch.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {kv.key: any_value_to_python(kv.value) for kv in span.attributes}
                    if conventions.SCORE in attributes:
                        found[span.span_id] = (attributes[conventions.SCORE], attributes.get(conventions.ANOMALY, False))
    return found


def key_of(span_id_bytes: bytes) -> tuple[str, str]:
    return KEYS[int.from_bytes(span_id_bytes, "big") % 1000 - 1]
