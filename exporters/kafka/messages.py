"""Turning one batch into Kafka messages: topic, key and size limit.

A batch is cut, in this order, by topic (``topic_from_attribute``), by
message key (trace ID, the values of ``partition_by`` references, or a hash
of the resource attributes) and finally by size, so that every message fits
``max_message_bytes``; an item too large to fit alone is set apart, so that
it does not take the rest of its batch down with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml import pdata
from otelml.encoding import Encoding, encode_batch, encode_log_record
from otelml.pdata import Batch, Signal
from otelml.references import KeyReader

Key = TypeVar("Key")

# Between the values of a key's references in a message key: "checkout|GET /cart".
KEY_SEPARATOR = "|"


@dataclasses.dataclass(frozen=True)
class Payload:
    """An encoded piece of a batch: ``items`` items in ``size`` bytes of message."""

    value: bytes
    items: int
    size: int


@dataclasses.dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes
    items: int


def split_records(batch: Batch, keys_of: Callable[[Any, Any, Any], Sequence[Key]]) -> dict[Key, Batch]:
    """One batch per key of ``batch``'s spans or log records, each keeping its records' resources and scopes.

    ``keys_of(resource_entry, scope_entry, records)`` gives the key of each
    of a scope's records; pieces come out in the order their keys first appear.
    """
    signal = Signal.of(batch)
    pieces: dict[Key, pdata.BatchBuilder] = {}
    for resource_entry, scope_entry, records in pdata.scopes(batch):
        for key, record in zip(keys_of(resource_entry, scope_entry, records), records):
            piece = pieces.get(key)
            if piece is None:
                piece = pieces[key] = pdata.BatchBuilder(signal)
            piece.records_for(resource_entry, scope_entry).append(record)
    return {key: piece.batch for key, piece in pieces.items()}


def split_by_trace_id(batch: ExportTraceServiceRequest) -> dict[bytes, Batch]:
    """One batch per trace ID, each keeping its spans' resources and scopes.

    >>> from opentelemetry.proto.trace.v1.trace_pb2 import Span
    >>> batch = ExportTraceServiceRequest()
    >>> scope = batch.resource_spans.add().scope_spans.add()
    >>> scope.spans.extend([Span(trace_id=b"a" * 16), Span(trace_id=b"b" * 16), Span(trace_id=b"a" * 16)])
    >>> {t[:1]: pdata.count_items(b) for t, b in split_by_trace_id(batch).items()}
    {b'a': 2, b'b': 1}
    """
    return split_records(batch, lambda resource, scope, spans: [span.trace_id for span in spans])


def split_by_references(batch: Batch, reader: KeyReader) -> dict[bytes, Batch]:
    """One batch per distinct key that ``reader`` reads, keyed by the key's values joined with ``|``.

    >>> from otelml.references import parse_key
    >>> logs = Signal.LOGS.request_type()
    >>> records = logs.resource_logs.add().scope_logs.add().log_records
    >>> for address in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
    ...     records.add().attributes.add(key="client.address").value.string_value = address
    >>> pieces = split_by_references(logs, KeyReader([parse_key("attributes.client.address")]))
    >>> {key: pdata.count_items(piece) for key, piece in pieces.items()}
    {b'10.0.0.1': 2, b'10.0.0.2': 1}
    """
    pieces = split_records(batch, lambda resource, scope, records: reader.keys(resource.resource, scope.scope, records))
    return {KEY_SEPARATOR.join(key).encode(): piece for key, piece in pieces.items()}


def resource_key(resource) -> bytes:
    """A stable hash of a resource's attributes, the same in every process and in any attribute order.

    >>> from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    >>> from otelml.encoding import add_attributes
    >>> a, b = Resource(), Resource()
    >>> add_attributes(a.attributes, {"x": 1, "y": "z"}); add_attributes(b.attributes, {"y": "z", "x": 1})
    >>> resource_key(a) == resource_key(b), len(resource_key(a))
    (True, 32)
    """
    digest = hashlib.blake2b(digest_size=16)
    for attribute in sorted(resource.attributes, key=lambda kv: kv.key):
        for part in (attribute.key.encode(), attribute.value.SerializeToString(deterministic=True)):
            digest.update(len(part).to_bytes(4, "big"))
            digest.update(part)
    return digest.hexdigest().encode()


def group_resources(batch: Batch, key_of: Callable[[Any], Key]) -> dict[Key, Batch]:
    """The resources of ``batch`` grouped by ``key_of(resource)``, one batch per key, in order."""
    signal = Signal.of(batch)
    groups: dict[Key, Batch] = {}
    for resource in pdata.resources(batch):
        group = groups.setdefault(key_of(resource), signal.request_type())
        getattr(group, signal.resource_field).append(resource)
    return groups


def message_size(key: bytes | None, value: bytes) -> int:
    """The size the producer checks against its limit: the record in its own record batch."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])


def fit(batch: Batch, encoding: Encoding, key: bytes | None, limit: int) -> Iterator[Payload]:
    """Payloads of ``batch`` that each fit ``limit``, halving the batch as often as needed.

    A payload over ``limit`` is a single item that cannot be cut further (or a
    key too long for any message): the caller refuses it.
    """
    if encoding.per_record:
        for _, _, records in pdata.scopes(batch):
            for record in records:
                value = encode_log_record(record, encoding)
                yield Payload(value, 1, message_size(key, value))
        return
    value = encode_batch(batch, encoding)
    items = pdata.count_items(batch)
    size = message_size(key, value)
    if size <= limit or items <= 1:
        yield Payload(value, items, size)
        return
    for piece in pdata.split(batch, (items + 1) // 2):
        yield from fit(piece, encoding, key, limit)
