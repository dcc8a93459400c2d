"""Decoding that repairs invalid UTF-8 instead of refusing the data that holds it.

OTLP string fields must be UTF-8, and the protobuf runtime refuses a whole
request when one of them is not. The Go collector does not check, so a
sender with one bad attribute value sees every span of its batch accepted
there and refused here. These decoders keep the strict decode as the fast
path; only data that fails it is decoded again with every invalid sequence
replaced by U+FFFD (as ``bytes.decode("utf-8", "replace")`` does), and the
number of items that held one is returned so that receivers can count them.

Protobuf is re-read with a twin of the OTLP schema in which every string
field is ``bytes`` (same wire format, no UTF-8 check); the parts that fail
the strict check are repaired and the result is read strictly again. JSON
cannot carry raw bytes, but a body may hold bytes that are not UTF-8 or
escapes of lone surrogates (``"\\ud800"``); both become U+FFFD. A JSON body
that may hold either is repaired before it is parsed at all, the rest is
parsed strictly at once.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from otelml import pdata
from otelml.pdata import Batch, Signal

REPLACEMENT = "\ufffd"


# --- protobuf ----------------------------------------------------------------


def _schema_files(descriptor) -> list:
    """The file of ``descriptor`` and every file it imports, imports first."""
    ordered: list = []

    def visit(file) -> None:
        for dependency in file.dependencies:
            visit(dependency)
        if file not in ordered:
            ordered.append(file)

    visit(descriptor.file)
    return ordered


def _bytes_twin(files) -> tuple[descriptor_pool.DescriptorPool, frozenset[str]]:
    """A pool holding ``files`` with every string field made ``bytes``, and the full names of those fields."""
    pool = descriptor_pool.DescriptorPool()
    string_fields: set[str] = set()

    def retype(message: descriptor_pb2.DescriptorProto, scope: str) -> None:
        name = f"{scope}.{message.name}"
        for field in message.field:
            if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                string_fields.add(f"{name}.{field.name}")
        for nested in message.nested_type:
            retype(nested, name)

    for file in files:
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        del proto.service[:]  # only the messages are needed
        for message in proto.message_type:
            retype(message, proto.package)
        pool.Add(proto)
    return pool, frozenset(string_fields)


_TWIN_POOL, _STRING_FIELDS = _bytes_twin(
    {file: None for signal in Signal for file in _schema_files(signal.request_type.DESCRIPTOR)}
)
_TWINS = {
    signal: message_factory.GetMessageClass(_TWIN_POOL.FindMessageTypeByName(signal.request_type.DESCRIPTOR.full_name))
    for signal in Signal
}


def bytes_schema(signal: Signal) -> type[Message]:
    """The request class of ``signal`` with every string field ``bytes``: it writes the invalid UTF-8 that
    some senders write (same wire format), and reads what the strict class refuses."""
    return _TWINS[signal]


def _strict_class(message: Message) -> type[Message]:
    """The OTLP class (strings checked) of a twin message."""
    descriptor = descriptor_pool.Default().FindMessageTypeByName(message.DESCRIPTOR.full_name)
    return message_factory.GetMessageClass(descriptor)


def _is_valid(message: Message) -> bool:
    """Whether the strict schema reads ``message`` (a twin) — checked by the protobuf runtime, not in Python."""
    try:
        _strict_class(message).FromString(message.SerializeToString())
    except DecodeError:
        return False
    return True


def _repair_message(message: Message, skip: str | None = None) -> bool:
    """Replace invalid UTF-8 in the string fields of ``message`` (a twin), but not in field ``skip``; True when any was."""
    repaired = False
    for field, value in message.ListFields():
        if field.name == skip:
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in [value] if isinstance(value, Message) else value:
                repaired |= _repair_message(item)
        elif field.full_name in _STRING_FIELDS:
            if isinstance(value, bytes):
                fixed = _repaired_bytes(value)
                if fixed is not value:
                    setattr(message, field.name, fixed)
                    repaired = True
            else:  # a repeated string field
                fixed_values = [_repaired_bytes(item) for item in value]
                if any(f is not v for f, v in zip(fixed_values, value)):
                    value[:] = fixed_values
                    repaired = True
    return repaired


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _repaired_bytes(value: bytes) -> bytes:
    """``value`` itself when it is UTF-8, else its repaired copy."""
    return value if _is_utf8(value) else value.decode("utf-8", "replace").encode("utf-8")


def _repair_batch(twin: Message, signal: Signal) -> int:
    """Repair ``twin`` in place, level by level; the items held by a repaired resource, scope or record."""
    repaired_items = 0
    checked, resource_valid, resource_repaired = None, True, False
    for resource, scope, records in pdata.scopes(twin, signal):
        if resource is not checked:  # each resource once, before its first scope
            checked, resource_valid = resource, _is_valid(resource)
            resource_repaired = not resource_valid and _repair_message(resource, skip=signal.scope_field)
        if resource_valid or (not resource_repaired and _is_valid(scope)):
            continue
        scope_repaired = _repair_message(scope, skip=signal.record_field) or resource_repaired
        for record in records:
            if scope_repaired or not _is_valid(record):
                _repair_message(record)
                repaired_items += pdata.record_items(record, signal)
    # A resource without scopes holds no item, but must be read strictly too.
    for resource in pdata.resources(twin, signal):
        if not getattr(resource, signal.scope_field):
            _repair_message(resource)
    return repaired_items


def parse_proto(data: bytes, signal: Signal) -> tuple[Batch, int]:
    """OTLP protobuf of ``signal``, invalid UTF-8 repaired; with the number of items repaired.

    Raises ``ValueError`` when ``data`` is not OTLP protobuf for another reason.

    >>> from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    >>> request = ExportLogsServiceRequest()
    >>> request.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "CAFE"
    >>> bad = request.SerializeToString().replace(b"CAFE", b"CA\\xff\\xfe")
    >>> batch, repaired = parse_proto(bad, Signal.LOGS)
    >>> batch.resource_logs[0].scope_logs[0].log_records[0].body.string_value, repaired
    ('CA\ufffd\ufffd', 1)
    """
    try:
        return pdata.from_proto(data, signal), 0
    except ValueError as error:
        strict_error = error
    twin = bytes_schema(signal)()
    try:
        twin.ParseFromString(data)
    except Exception:  # DecodeError, or RecursionError on hostile nesting: not a UTF-8 problem
        raise strict_error from None
    repaired = _repair_batch(twin, signal)
    try:
        return pdata.from_proto(twin.SerializeToString(), signal), repaired
    except ValueError:
        raise strict_error from None


# --- JSON and text -------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON escapes of surrogates start \ud8 .. \udf; a pair is fine, a lone one is not UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _repair_strings(node: Any) -> tuple[Any, bool]:
    """``node`` with every surrogate code point in its strings (keys too) replaced by U+FFFD; True when any was."""
    if isinstance(node, str):
        fixed = _SURROGATE.sub(REPLACEMENT, node)
        return fixed, fixed != node
    if isinstance(node, list):
        pairs = [_repair_strings(item) for item in node]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    if isinstance(node, dict):
        result, changed = {}, False
        for key, value in node.items():
            fixed_key, key_changed = _repair_strings(key)
            result[fixed_key], value_changed = _repair_strings(value)
            changed |= key_changed or value_changed
        return result, changed
    return node, False


def _load_json(payload: bytes, escape_bytes: bool) -> Any:
    """The JSON document in ``payload``; with ``escape_bytes``, invalid UTF-8 bytes are read as lone
    surrogates (U+DC80..U+DCFF), to be repaired like escaped ones."""
    return pdata.load_json(payload.decode("utf-8", "surrogateescape") if escape_bytes else payload)


def _may_need_repair(payload: bytes) -> bool:
    """Whether ``payload`` holds bytes that are not UTF-8 or an escape of a surrogate."""
    return not _is_utf8(payload) or _SURROGATE_ESCAPE.search(payload) is not None


def load_json(payload: bytes) -> tuple[Any, bool]:
    """A JSON document with invalid UTF-8 and lone surrogates repaired; True when any was.

    Raises ``ValueError`` when ``payload`` is not JSON.

    >>> load_json(b'{"t": "a\\xffb", "u": "\\\\ud800"}')
    ({'t': 'a\ufffdb', 'u': '\ufffd'}, True)
    >>> load_json(b'{"t": "\\\\ud83d\\\\ude00"}')
    ({'t': '😀'}, False)
    """
    if not _may_need_repair(payload):
        return _load_json(payload, escape_bytes=False), False
    document = _load_json(payload, escape_bytes=True)
    try:
        return _repair_strings(document)
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


def decode_text(payload: bytes) -> tuple[str, bool]:
    """``payload`` as text, invalid UTF-8 repaired; True when it was.

    >>> decode_text(b"disk \\xc3\\x28full")
    ('disk \ufffd(full', True)
    """
    try:
        return payload.decode("utf-8"), False
    except UnicodeDecodeError:
        return payload.decode("utf-8", "replace"), True


# OTLP/JSON names of each level, in both spellings protobuf's JSON parser accepts.
_JSON_LEVELS = {
    Signal.TRACES: (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",)),
    Signal.LOGS: (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"), ("logRecords", "log_records")),
    Signal.METRICS: (("resourceMetrics", "resource_metrics"), ("scopeMetrics", "scope_metrics"), ("metrics",)),
}


def _children(node: Any, names: tuple[str, ...]) -> list:
    if isinstance(node, dict):
        for name in names:
            if isinstance(node.get(name), list):
                return node[name]
    return []


def _has_surrogates(node: Any, skip: tuple[str, ...] = ()) -> bool:
    """Whether a string in ``node`` (keys too, but not under the keys ``skip``) holds a surrogate code point."""
    if isinstance(node, str):
        return _SURROGATE.search(node) is not None
    if isinstance(node, list):
        return any(_has_surrogates(item) for item in node)
    if isinstance(node, dict):
        return any(_has_surrogates(key) or (key not in skip and _has_surrogates(value)) for key, value in node.items())
    return False


def _repaired_positions(document: Any, signal: Signal) -> list[tuple[int, int, int]]:
    """(resource, scope, record) indexes of the records that hold, or sit under a resource or scope that holds, a surrogate."""
    resources_names, scopes_names, records_names = _JSON_LEVELS[signal]
    positions = []
    for r, resource in enumerate(_children(document, resources_names)):
        resource_repaired = _has_surrogates(resource, skip=scopes_names)
        for s, scope in enumerate(_children(resource, scopes_names)):
            scope_repaired = resource_repaired or _has_surrogates(scope, skip=records_names)
            positions += [
                (r, s, i) for i, record in enumerate(_children(scope, records_names)) if scope_repaired or _has_surrogates(record)
            ]
    return positions


def parse_json(data: bytes, signal: Signal, *, bare_resources: bool = False) -> tuple[Batch, int]:
    """OTLP/JSON of ``signal``, invalid UTF-8 and lone surrogates repaired; with the number of items repaired.

    With ``bare_resources``, ``data`` is a bare array of resource entries (as
    rotel's Kafka exporter writes them). Raises ``ValueError`` when ``data``
    is not OTLP/JSON for another reason.

    >>> batch, repaired = parse_json(b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "\\\\udc00!"}}]}]}]}', Signal.LOGS)
    >>> batch.resource_logs[0].scope_logs[0].log_records[0].body.string_value, repaired
    ('\ufffd!', 1)
    """

    def otlp_document(escape_bytes: bool) -> Any:
        document = _load_json(data, escape_bytes)
        return {_JSON_LEVELS[signal][0][0]: document} if bare_resources else document

    if not _may_need_repair(data):
        return pdata.from_json(otlp_document(escape_bytes=False), signal), 0
    # Repaired before it is parsed, not after a strict parse fails: protobuf's JSON parser does not
    # refuse a lone surrogate in a field name, it fails inside (SystemError).
    try:
        document = otlp_document(escape_bytes=True)
        positions = _repaired_positions(document, signal)
        batch = pdata.from_json(_repair_strings(document)[0], signal)
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    resources = getattr(batch, signal.resource_field)
    return batch, sum(
        pdata.record_items(getattr(getattr(resources[r], signal.scope_field)[s], signal.record_field)[i], signal)
        for r, s, i in positions
    )
