"""Writing the ``otelml.*`` attributes onto records, fast.

Setting six attributes through the protobuf API costs several
microseconds per record. Instead, the attributes are encoded once per
record with :mod:`struct` (constant key bytes, variable values) and merged
into the record with ``MergeFromString``: protobuf's merge appends repeated
fields, which is exactly "add these attributes".
"""

from __future__ import annotations

import struct

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otelml.pdata import Signal

PREFIX = "otelml."
SCORE = "otelml.score"
ANOMALY = "otelml.anomaly"
EXPECTED = "otelml.expected"
FORECAST = "otelml.forecast"
SLOPE = "otelml.trend.slope"
PREDICTED = "otelml.incident.predicted"
MODEL_SCORE = "otelml.score."
# Only on flagged records, when alerts are on.
REASON = "otelml.alert.reason"
KEY = "otelml.key"
ACTUAL = "otelml.actual"

_RECORD_TYPES = {Signal.TRACES: Span, Signal.LOGS: LogRecord}
# Wire types and AnyValue field numbers (opentelemetry/proto/common/v1/common.proto).
_LENGTH_DELIMITED = 2
_ANY_STRING, _ANY_BOOL, _ANY_DOUBLE = 1, 2, 4


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

    def prefix(self, key: str, value_size: int, value_tag: int) -> bytes:
        """Everything of a KeyValue before its fixed-size value."""
        any_value_size = 1 + value_size
        key_bytes = _length_delimited(1, key.encode())
        key_value_size = len(key_bytes) + 2 + any_value_size
        return (_varint(self.field << 3 | _LENGTH_DELIMITED) + _varint(key_value_size) + key_bytes
                + bytes([2 << 3 | _LENGTH_DELIMITED, any_value_size, value_tag]))

    def double_prefix(self, key: str) -> bytes:
        return self.prefix(key, 8, _ANY_DOUBLE << 3 | 1)

    def bool_prefix(self, key: str) -> bytes:
        return self.prefix(key, 1, _ANY_BOOL << 3)

    def string(self, key: str, text: str) -> bytes:
        any_value = _length_delimited(_ANY_STRING, text.encode())
        return _length_delimited(self.field, _length_delimited(1, key.encode()) + _length_delimited(2, any_value))

    def double(self, key: str, value: float) -> bytes:
        return self.double_prefix(key) + struct.pack("<d", value)


class AttributeWriter:
    """Appends the processor's output attributes to one record.

    Parameters
    ----------
    signal
        Traces or logs.
    model_ids
        Models whose own scores go into ``otelml.score.<id>`` (empty unless verbose).

    Examples
    --------
    >>> writer = AttributeWriter(Signal.TRACES, ["ewm_mean"])
    >>> span = Span()
    >>> writer.write(span, 0.9, True, 12.5, 0.7, 0.01, False, [0.9])
    >>> [kv.key for kv in span.attributes][:3], span.attributes[0].value.double_value
    (['otelml.score', 'otelml.anomaly', 'otelml.expected'], 0.9)
    """

    def __init__(self, signal: Signal, model_ids: list[str]):
        self.encoder = AttributeEncoder(signal)
        double, boolean = self.encoder.double_prefix, self.encoder.bool_prefix
        head = [(double(SCORE), "d"), (boolean(ANOMALY), "?")]
        tail = [(double(FORECAST), "d"), (double(SLOPE), "d"), (boolean(PREDICTED), "?")]
        tail += [(double(MODEL_SCORE + model_id), "d") for model_id in model_ids]
        self.with_expected = self._layout(head + [(double(EXPECTED), "d")] + tail)
        self.without_expected = self._layout(head + tail)

    @staticmethod
    def _layout(fields: list[tuple[bytes, str]]) -> tuple[struct.Struct, list]:
        """The struct of all fields, and its argument list with the values' places left empty."""
        layout = struct.Struct("<" + "".join(f"{len(prefix)}s{code}" for prefix, code in fields))
        return layout, [part for prefix, _ in fields for part in (prefix, None)]

    def write(self, record, score: float, anomaly: bool, expected: float | None, forecast: float,
              slope: float, predicted: bool, model_scores: list[float]) -> None:
        attributes = record.attributes
        if attributes and attributes[-1].key.startswith(PREFIX):
            _drop_previous(attributes)
        if expected is None:
            layout, arguments = self.without_expected
            values = [score, anomaly, forecast, slope, predicted, *model_scores]
        else:
            layout, arguments = self.with_expected
            values = [score, anomaly, expected, forecast, slope, predicted, *model_scores]
        arguments = arguments.copy()
        arguments[1::2] = values
        record.MergeFromString(layout.pack(*arguments))

    def write_alert(self, record, reason: str, key: str, actual: float) -> None:
        """The details an alert needs, on a flagged record only."""
        encoder = self.encoder
        record.MergeFromString(encoder.string(REASON, reason) + encoder.string(KEY, key) + encoder.double(ACTUAL, actual))


def _drop_previous(attributes) -> None:
    """Remove ``otelml.*`` attributes an earlier scoring left (a replayed or re-scored record)."""
    kept = [kv for kv in attributes if not kv.key.startswith(PREFIX)]
    del attributes[:]
    attributes.extend(kept)
