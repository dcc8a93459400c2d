"""Message payload encodings shared by the Kafka and MQTT receivers and the Kafka exporter.

``otlp_proto`` and ``otlp_json`` carry a whole OTLP batch per message, for
every signal. ``raw``, ``text`` and ``json`` carry one log record per
message: its body as bytes, as UTF-8 text, or as a JSON object whose scalar
fields also become attributes.

Receivers collect the messages of one fetch into one batch with
:class:`BatchBuilder`; the exporter turns a batch back into payloads with
:func:`encode_batch` and :func:`encode_log_record`.
"""

from __future__ import annotations

import base64
import enum
import json
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ScopeLogs

from otelml import pdata, utf8
from otelml.pdata import Batch, Signal


class Encoding(str, enum.Enum):
    OTLP_PROTO = "otlp_proto"
    OTLP_JSON = "otlp_json"
    RAW = "raw"
    TEXT = "text"
    JSON = "json"

    @property
    def per_record(self) -> bool:
        """True when one message is one log record rather than a whole batch."""
        return self in _RECORD_ENCODINGS


_RECORD_ENCODINGS = frozenset({Encoding.RAW, Encoding.TEXT, Encoding.JSON})
_OTLP_ENCODINGS = frozenset({Encoding.OTLP_PROTO, Encoding.OTLP_JSON})
SIGNAL_ENCODINGS = {
    Signal.TRACES: _OTLP_ENCODINGS,
    Signal.LOGS: _OTLP_ENCODINGS | _RECORD_ENCODINGS,
    Signal.METRICS: _OTLP_ENCODINGS,
}


def encoding_problem(signal: Signal, encoding: Encoding) -> str | None:
    """Why ``encoding`` cannot carry ``signal``, or None when it can."""
    if encoding in SIGNAL_ENCODINGS[signal]:
        return None
    known = ", ".join(sorted(e.value for e in SIGNAL_ENCODINGS[signal]))
    return f"encoding {encoding.value!r} cannot carry {signal.value} (use one of: {known})"


def encoding_problems(encodings: Mapping[Signal, Encoding]) -> list[str]:
    """``<signal>::encoding: ...`` for every signal of ``encodings`` its encoding cannot carry."""
    problems = []
    for signal, encoding in encodings.items():
        problem = encoding_problem(signal, encoding)
        if problem:
            problems.append(f"{signal.value}::encoding: {problem}")
    return problems


# --- Python values <-> OTLP AnyValue --------------------------------------

_INT64 = range(-(2**63), 2**63)


def set_any_value(target: AnyValue, value) -> None:
    """Store a JSON-like Python value in ``target``; None leaves it empty.

    Raises ``ValueError`` for an integer beyond a double's range, ``TypeError`` for a value of another kind.

    >>> v = AnyValue(); set_any_value(v, {"on": True, "n": [1, 2.5]})
    >>> any_value_to_python(v)
    {'on': True, 'n': [1, 2.5]}
    """
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int) and value in _INT64:
        target.int_value = value
    elif isinstance(value, (int, float)):
        try:
            target.double_value = float(value)
        except OverflowError:
            raise ValueError(f"an integer of {len(str(abs(value)))} digits is beyond what an OTLP value holds") from None
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, (bytes, bytearray)):
        target.bytes_value = bytes(value)
    elif isinstance(value, list):
        array = target.array_value
        for item in value:
            set_any_value(array.values.add(), item)
    elif isinstance(value, dict):
        kvlist = target.kvlist_value
        for key, item in value.items():
            entry = kvlist.values.add()
            entry.key = str(key)
            set_any_value(entry.value, item)
    else:
        raise TypeError(f"cannot store {type(value).__name__} in an OTLP value")


def any_value_to_python(value: AnyValue):
    """The JSON-like Python value held by ``value`` (bytes stay bytes)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def add_attributes(attributes, values: Mapping[str, object]) -> None:
    """Append ``values`` to a repeated KeyValue field, replacing keys it already has."""
    if not values:
        return
    kept = [kv for kv in attributes if kv.key not in values]
    if len(kept) != len(attributes):
        del attributes[:]
        attributes.extend(kept)
    for key, value in values.items():
        entry = attributes.add()
        entry.key = key
        set_any_value(entry.value, value)


# --- JSON readings ---------------------------------------------------------


def scalar_fields(document: dict, flatten: bool) -> dict[str, object]:
    """The scalar (string, number, boolean) fields of ``document``.

    With ``flatten``, nested objects contribute their scalars under dotted
    keys; lists and nulls are left to the body.

    >>> scalar_fields({"t": 21.5, "meta": {"unit": "C"}, "tags": ["a"]}, flatten=True)
    {'t': 21.5, 'meta.unit': 'C'}
    >>> scalar_fields({"t": 21.5, "meta": {"unit": "C"}}, flatten=False)
    {'t': 21.5}
    """
    fields: dict[str, object] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, (str, int, float)):
                fields[prefix + key] = value
            elif flatten and isinstance(value, dict):
                walk(value, f"{prefix}{key}.")

    walk(document, "")
    return fields


# Epoch numbers are told apart by magnitude: seconds stay below 1e11 until
# the year 5138, and a millisecond value of today is above it.
_EPOCH_UNITS = ((1e11, 1_000_000_000), (1e14, 1_000_000), (1e17, 1_000))
# OTLP times are unsigned 64-bit nanoseconds since the epoch.
_NANOS_END = 2**64


def parse_timestamp(value) -> int:
    """Nanoseconds since the epoch from epoch s/ms/us/ns (told apart by magnitude) or RFC 3339.

    >>> parse_timestamp(1700000000)
    1700000000000000000
    >>> parse_timestamp(1700000000123)
    1700000000123000000
    >>> parse_timestamp("2023-11-14T22:13:20.5Z")
    1700000000500000000
    >>> parse_timestamp("1e999999")
    Traceback (most recent call last):
    ...
    ValueError: timestamp '1e999999' is out of range (1970 to 2554)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"timestamp {value!r} is neither an epoch number nor RFC 3339")
    try:
        # Decimal keeps every digit of "1700000000.123456789" that a float would round away.
        number = Decimal(value if isinstance(value, (int, str)) else repr(value))
    except InvalidOperation:  # only text gets here
        return _parse_rfc3339(str(value))
    if not number.is_finite():
        raise ValueError(f"timestamp {value!r} is not a finite number")
    nanos = next((number * per_unit for limit, per_unit in _EPOCH_UNITS if abs(number) < limit), number)
    # Checked before int(), which takes minutes to expand an exponent such as 1e999999 into its digits.
    if not 0 <= nanos < _NANOS_END:
        raise ValueError(f"timestamp {value!r} is out of range (1970 to 2554)")
    return int(nanos)


def _parse_rfc3339(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither an epoch number nor RFC 3339") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (RFC 3339 needs Z or an offset)")
    # datetime keeps microseconds; add back any finer digits of the fraction.
    nanos = _fraction_nanos(text) % 1000
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000 + nanos


def _fraction_nanos(text: str) -> int:
    seconds_end = text.find(".", 17)
    if seconds_end < 0:
        return 0
    digits = ""
    for char in text[seconds_end + 1 :]:
        if not char.isdigit():
            break
        digits += char
    return int((digits + "000000000")[:9]) if digits else 0


def _field(document: dict, path: str):
    """``document[path]``, or the value at the dotted ``path`` through nested objects."""
    if path in document:
        return document[path]
    node = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# Protobuf's decoders refuse messages nested more than 100 deep. A request holds a record body four
# messages down, and each level of JSON in it is up to three more (AnyValue, KeyValueList, KeyValue):
# a body nested deeper could be taken in but never sent on or read back.
MAX_JSON_DEPTH = 32


def check_json_depth(node: dict | list, depth: int = 1) -> None:
    """Raise ``ValueError`` when objects and arrays in ``node`` nest deeper than :data:`MAX_JSON_DEPTH`.

    >>> check_json_depth({"meta": {"unit": "C"}, "tags": ["a"]})
    >>> check_json_depth(json.loads("[" * 33 + "]" * 33))
    Traceback (most recent call last):
    ...
    ValueError: JSON nested deeper than 32 levels cannot travel as OTLP
    """
    for child in node.values() if isinstance(node, dict) else node:
        if isinstance(child, (dict, list)):
            if depth == MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels cannot travel as OTLP")
            check_json_depth(child, depth + 1)


def _fill_json_record(record: LogRecord, payload: bytes, flatten: bool, timestamp_field: str | None) -> bool:
    """Fill ``record`` from a JSON object; True when invalid UTF-8 in it was repaired."""
    document, repaired = utf8.load_json(payload)
    if not isinstance(document, dict):
        raise ValueError(f"a JSON message must be an object, not {type(document).__name__}")
    check_json_depth(document)
    set_any_value(record.body, document)
    add_attributes(record.attributes, scalar_fields(document, flatten))
    if timestamp_field:
        stamp = _field(document, timestamp_field)
        if stamp is not None:
            record.time_unix_nano = parse_timestamp(stamp)
    return repaired


# --- decoding: messages -> one batch ---------------------------------------


class BatchBuilder:
    """Collects decoded messages of one signal and encoding into one batch.

    Parameters
    ----------
    signal
        The signal every message carries.
    encoding
        How every message is encoded.
    flatten_json
        For the ``json`` encoding: make attributes of nested scalars too,
        under dotted keys (MQTT readings); otherwise top-level scalars only.
    timestamp_field
        For the ``json`` encoding: the (dotted) field holding the record's time.

    Examples
    --------
    >>> builder = BatchBuilder(Signal.LOGS, Encoding.TEXT)
    >>> builder.add(b"disk full", resource_attributes={"host.name": "a"}, time_ns=1)
    1
    >>> builder.items, builder.batch.resource_logs[0].scope_logs[0].log_records[0].body.string_value
    (1, 'disk full')
    """

    def __init__(self, signal: Signal, encoding: Encoding, *, flatten_json: bool = False, timestamp_field: str | None = None):
        problem = encoding_problem(signal, encoding)
        if problem:
            raise ValueError(problem)
        self.signal = signal
        self.encoding = encoding
        self.flatten_json = flatten_json
        self.timestamp_field = timestamp_field
        self.batch: Batch = signal.request_type()
        self.items = 0
        self.repaired = 0  # items whose invalid UTF-8 was replaced by U+FFFD
        # Record encodings: the scope of each distinct resource, so that the
        # records of one device share one resource in the batch.
        self._scopes: dict[tuple, ScopeLogs] = {}

    def add(
        self,
        payload: bytes,
        resource_attributes: Mapping[str, object] | None = None,
        record_attributes: Mapping[str, object] | None = None,
        time_ns: int | None = None,
    ) -> int:
        """Decode one message into the batch; returns the items it held.

        ``record_attributes`` and ``time_ns`` (the default record time) apply
        to the record encodings only. Raises ``ValueError`` when the payload
        cannot be decoded; the batch is then unchanged. Invalid UTF-8 does
        not make a payload undecodable: it is repaired and counted in
        ``repaired``.
        """
        resource_attributes = resource_attributes or {}
        if self.encoding.per_record:
            record, repaired = self._decode_record(payload, time_ns)
            add_attributes(record.attributes, record_attributes or {})
            self._scope_for(resource_attributes).log_records.append(record)
            self.items += 1
            self.repaired += repaired
            return 1
        decoded, repaired = decode_batch(payload, self.encoding, self.signal)
        self.repaired += repaired
        resources = getattr(decoded, self.signal.resource_field)
        for resource in resources:
            add_attributes(resource.resource.attributes, resource_attributes)
        getattr(self.batch, self.signal.resource_field).extend(resources)
        items = pdata.count_items(decoded)
        self.items += items
        return items

    def _decode_record(self, payload: bytes, time_ns: int | None) -> tuple[LogRecord, int]:
        """The record of one message, and whether invalid UTF-8 in it was repaired."""
        record = LogRecord()
        record.observed_time_unix_nano = time.time_ns()
        record.time_unix_nano = time_ns or record.observed_time_unix_nano
        repaired = False
        if self.encoding is Encoding.RAW:
            record.body.bytes_value = payload
        elif self.encoding is Encoding.TEXT:
            record.body.string_value, repaired = utf8.decode_text(payload)
        else:
            repaired = _fill_json_record(record, payload, self.flatten_json, self.timestamp_field)
        return record, repaired

    def _scope_for(self, resource_attributes: Mapping[str, object]) -> ScopeLogs:
        key = tuple(sorted((k, repr(v)) for k, v in resource_attributes.items()))
        scope = self._scopes.get(key)
        if scope is None:
            resource = self.batch.resource_logs.add()
            add_attributes(resource.resource.attributes, resource_attributes)
            scope = resource.scope_logs.add()
            self._scopes[key] = scope
        return scope


def decode_batch(payload: bytes, encoding: Encoding, signal: Signal) -> tuple[Batch, int]:
    """One OTLP batch from an ``otlp_proto`` or ``otlp_json`` payload, and the items whose invalid
    UTF-8 was repaired (see :mod:`otelml.utf8`); ValueError when it is not one."""
    if encoding is Encoding.OTLP_PROTO:
        return utf8.parse_proto(payload, signal)
    if encoding is Encoding.OTLP_JSON:
        return utf8.parse_json(payload, signal, bare_resources=payload.lstrip()[:1] == b"[")
    raise ValueError(f"encoding {encoding.value!r} does not carry whole batches")


# --- encoding: batch -> payloads ---------------------------------------------


def encode_batch(batch: Batch, encoding: Encoding) -> bytes:
    """The ``otlp_proto`` or ``otlp_json`` payload of a whole batch."""
    if encoding is Encoding.OTLP_PROTO:
        return batch.SerializeToString()
    if encoding is Encoding.OTLP_JSON:
        return pdata.to_json(batch)
    raise ValueError(f"encoding {encoding.value!r} does not carry whole batches")


def encode_log_record(record: LogRecord, encoding: Encoding) -> bytes:
    """The payload of one log record: its body as bytes (``raw``), text or a JSON object.

    ``raw`` and ``text`` send a string body as UTF-8 and bytes as they are
    (``text`` requires them to be UTF-8); any other body is sent as JSON.
    ``json`` sends a map body as its object and any other body as
    ``{"body": value}``, so that every message is an object, as the
    receivers' ``json`` encoding expects.

    >>> r = LogRecord(); r.body.string_value = "hi"
    >>> encode_log_record(r, Encoding.TEXT), encode_log_record(r, Encoding.JSON)
    (b'hi', b'{"body":"hi"}')
    """
    if not encoding.per_record:
        raise ValueError(f"encoding {encoding.value!r} does not carry single records")
    body = record.body
    kind = body.WhichOneof("value")
    if encoding is not Encoding.JSON:
        if kind == "string_value":
            return body.string_value.encode()
        if kind == "bytes_value":
            if encoding is Encoding.TEXT:
                _check_utf8(body.bytes_value)
            return body.bytes_value
    value = any_value_to_python(body)
    if encoding is Encoding.JSON and kind != "kvlist_value":
        value = {"body": value}
    return json.dumps(value, separators=(",", ":"), default=_bytes_as_base64).encode()


def _check_utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"a bytes body is not UTF-8 text: {error}") from None


def _bytes_as_base64(value):
    # As OTLP/JSON writes bytes values.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
