"""Writing the ``otelml.*`` attributes onto records, fast.

Setting several attributes through the protobuf API costs microseconds per
record. Instead, the attributes of a whole batch are encoded at once with
numpy (constant key bytes, the values written in place) and merged into
each record with ``MergeFromString``: protobuf's merge appends repeated
fields, which is exactly "add these attributes". Records differ only in
which optional attributes they carry (an expected value, an incident id,
the incident opening), so each combination has its own fixed layout.
Every attribute name comes from :mod:`otelml.conventions`.
"""

from __future__ import annotations

import math

import numpy as np
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otelml.conventions import (
    ACTUAL,
    ANOMALY,
    EXPECTED,
    FORECAST,
    INCIDENT_ID,
    INCIDENT_OPEN,
    KEY,
    LEVEL_RECENT,
    LEVEL_USUAL,
    MODEL_SCORE,
    MODELS,
    PREDICTED,
    PREFIX,
    RANGE_HIGH,
    RANGE_LOW,
    SCORE,
    SLOPE,
    TARGET,
    UNIT,
)
from otelml.pdata import Signal
from otelml.processors.anomaly.incidents import ID_BYTES

RAW_SCORE = MODEL_SCORE + "raw"
_RECORD_TYPES: dict[Signal, type[Span] | type[LogRecord]] = {Signal.TRACES: Span, Signal.LOGS: LogRecord}
# Wire types and AnyValue field numbers (opentelemetry/proto/common/v1/common.proto).
_LENGTH_DELIMITED = 2
_ANY_STRING, _ANY_BOOL, _ANY_DOUBLE = 1, 2, 4
ID_TEXT = 2 * ID_BYTES
# Optional attributes: which bit of a record's layout code says it has them.
HAS_EXPECTED, IN_INCIDENT, OPENS_INCIDENT = 1, 2, 4


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


class AttributeEncoder:
    """Encodes attribute KeyValues of one record type (span or log record)."""

    def __init__(self, signal: Signal):
        self.field = _RECORD_TYPES[signal].DESCRIPTOR.fields_by_name["attributes"].number

    def prefix(self, key: str, value_head: bytes, value_size: int) -> bytes:
        """Everything of a KeyValue before its fixed-size value."""
        any_value_size = len(value_head) + value_size
        key_bytes = _length_delimited(1, key.encode())
        key_value_size = len(key_bytes) + 2 + any_value_size
        return (
            _varint(self.field << 3 | _LENGTH_DELIMITED)
            + _varint(key_value_size)
            + key_bytes
            + bytes([2 << 3 | _LENGTH_DELIMITED, any_value_size])
            + value_head
        )

    def column(self, key: str, code: str) -> tuple[bytes, str]:
        """The prefix and numpy format of a fixed-size attribute: ``d`` double, ``?`` bool, ``s`` incident id."""
        if code == "d":
            return self.prefix(key, bytes([_ANY_DOUBLE << 3 | 1]), 8), "<f8"
        if code == "?":
            return self.prefix(key, bytes([_ANY_BOOL << 3]), 1), "?"
        return self.prefix(key, bytes([_ANY_STRING << 3 | _LENGTH_DELIMITED, ID_TEXT]), ID_TEXT), f"S{ID_TEXT}"

    def record(self, attributes: list[tuple[str, object]]) -> bytes:
        """Any attributes of one record, through the protobuf API (for the few records that need them)."""
        message = _RECORD_TYPES_BY_FIELD[self.field]()
        for key, value in attributes:
            _set(message.attributes.add(key=key).value, value)
        return message.SerializeToString()


_RECORD_TYPES_BY_FIELD = {record.DESCRIPTOR.fields_by_name["attributes"].number: record for record in _RECORD_TYPES.values()}


def _set(any_value: AnyValue, value) -> None:
    if isinstance(value, str):
        any_value.string_value = value
    elif isinstance(value, list):
        any_value.array_value.SetInParent()
        for item in value:
            _set(any_value.array_value.values.add(), item)
    else:
        any_value.double_value = value


class _Layout:
    """The encoded attributes of one record as a numpy record: constant key bytes, then each value in place."""

    def __init__(self, columns: list[tuple[str, bytes, str]]):
        names, formats, offsets = [], [], []
        template = b""
        for name, prefix, format in columns:
            template += prefix
            names.append(name)
            formats.append(format)
            offsets.append(len(template))
            template += bytes(np.dtype(format).itemsize)
        self.names = names
        self.template = np.frombuffer(template, dtype=np.uint8)
        self.dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": len(template)})

    def encode(self, values: dict[str, np.ndarray]) -> bytes:
        """All records' attributes, one after the other."""
        raw = np.empty((len(next(iter(values.values()))), len(self.template)), dtype=np.uint8)
        raw[:] = self.template
        rows = raw.view(self.dtype)[:, 0]
        for name in self.names:
            rows[name] = values[name]
        return raw.tobytes()


class AttributeWriter:
    """Appends the processor's output attributes to records.

    Parameters
    ----------
    signal
        Traces or logs.
    model_ids
        Models whose own scores go into ``otelml.score.<id>``, with the raw composite
        in ``otelml.score.raw`` (empty unless verbose).

    Examples
    --------
    >>> writer = AttributeWriter(Signal.TRACES, ["ewm_mean"])
    >>> spans = [Span(), Span()]
    >>> writer.write(spans, {"score": np.array([0.9, 0.1]), "anomaly": np.array([True, False]),
    ...              "expected": np.array([12.5, np.nan]), "forecast": np.zeros(2), "slope": np.zeros(2),
    ...              "predicted": np.zeros(2, dtype=bool), "incident": np.array([b"0123456789abcdef", b""]),
    ...              "opens": np.array([True, False]), "raw": np.array([0.8, 0.1]), "model0": np.array([0.8, 0.1])})
    >>> [kv.key for kv in spans[0].attributes][:3], spans[0].attributes[0].value.double_value
    (['otelml.score', 'otelml.anomaly', 'otelml.expected'], 0.9)
    >>> [(kv.key, kv.value.WhichOneof("value")) for kv in spans[0].attributes][5:8]
    [('otelml.incident.predicted', 'bool_value'), ('otelml.incident.id', 'string_value'), ('otelml.incident.open', 'bool_value')]
    >>> [kv.key for kv in spans[1].attributes][2], len(spans[1].attributes)
    ('otelml.forecast', 7)
    """

    def __init__(self, signal: Signal, model_ids: list[str]):
        self.encoder = AttributeEncoder(signal)
        column = self.encoder.column
        self.head = [("score", *column(SCORE, "d")), ("anomaly", *column(ANOMALY, "?"))]
        self.expected = [("expected", *column(EXPECTED, "d"))]
        self.middle = [
            ("forecast", *column(FORECAST, "d")),
            ("slope", *column(SLOPE, "d")),
            ("predicted", *column(PREDICTED, "?")),
        ]
        self.incident = [("incident", *column(INCIDENT_ID, "s"))]
        self.opens = [("opens", *column(INCIDENT_OPEN, "?"))]
        self.verbose = [("raw", *column(RAW_SCORE, "d"))] if model_ids else []
        self.verbose += [
            (f"model{position}", *column(MODEL_SCORE + model_id, "d")) for position, model_id in enumerate(model_ids)
        ]
        self._layouts: dict[int, _Layout] = {}

    def _layout(self, code: int) -> _Layout:
        layout = self._layouts.get(code)
        if layout is None:
            columns = self.head + (self.expected if code & HAS_EXPECTED else []) + self.middle
            columns += (self.incident if code & IN_INCIDENT else []) + (self.opens if code & OPENS_INCIDENT else [])
            layout = self._layouts[code] = _Layout(columns + self.verbose)
        return layout

    def write(self, records: list, values: dict[str, np.ndarray]) -> None:
        """Append the attributes to every record.

        ``values`` holds a column per attribute: ``expected`` is NaN where there is
        none, ``incident`` the id (empty outside an incident), ``opens`` true on the
        record that opens one.
        """
        codes = (
            (values["expected"] == values["expected"]) * HAS_EXPECTED
            + (values["incident"] != b"") * IN_INCIDENT
            + values["opens"] * OPENS_INCIDENT
        )
        order = np.argsort(codes, kind="stable")
        sizes = np.empty(len(records), dtype=np.int64)
        encoded = []
        for code in np.unique(codes).tolist():
            layout = self._layout(code)
            members = order[codes[order] == code]
            encoded.append(layout.encode({name: column[members] for name, column in values.items()}))
            sizes[members] = len(layout.template)
        data = b"".join(encoded)
        starts = np.empty(len(records), dtype=np.int64)
        starts[order] = np.cumsum(sizes[order]) - sizes[order]
        # Bytes slices: protobuf merges them faster than memoryview slices.
        for record, start, size in zip(records, starts.tolist(), sizes.tolist()):
            attributes = record.attributes
            if attributes and attributes[-1].key.startswith(PREFIX):
                _drop_previous(attributes)
            record.MergeFromString(data[start : start + size])

    def write_alert(
        self,
        record,
        key: str,
        target: str,
        unit: str,
        actual: float,
        low: float,
        high: float,
        models: list[str],
        forecast: list[tuple[str, float]],
        levels: tuple[float, float] = (math.nan, math.nan),
    ) -> None:
        """The structured details of an alert (the expected value is already on the record), and of its forecast.

        ``levels``: the recent and usual levels of a level model that fired (NaN: none did).
        """
        details = [(KEY, key), (TARGET, target), (UNIT, unit), (ACTUAL, actual)]
        if low == low and high == high:
            details += [(RANGE_LOW, low), (RANGE_HIGH, high)]
        recent, usual = levels
        if recent == recent and usual == usual:
            details += [(LEVEL_RECENT, recent), (LEVEL_USUAL, usual)]
        details.append((MODELS, models))
        record.MergeFromString(self.encoder.record([*details, *forecast]))


def _drop_previous(attributes) -> None:
    """Remove ``otelml.*`` attributes an earlier scoring left (a replayed or re-scored record)."""
    kept = [kv for kv in attributes if not kv.key.startswith(PREFIX)]
    del attributes[:]
    attributes.extend(kept)
