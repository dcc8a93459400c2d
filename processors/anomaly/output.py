"""Writing the ``otelml.*`` attributes onto records, fast.

Setting six attributes through the protobuf API costs several
microseconds per record. Instead, the attributes of a whole batch are
encoded at once with numpy (constant key bytes, the values written in
place) and merged into each record with ``MergeFromString``: protobuf's
merge appends repeated fields, which is exactly "add these attributes".
"""

from __future__ import annotations

import struct

import numpy as np
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


class _Layout:
    """The encoded attributes of one record as a numpy record: constant key bytes, then each value in place."""

    def __init__(self, fields: list[tuple[str, bytes, str]]):
        names, formats, offsets = [], [], []
        template = b""
        for name, prefix, code in fields:
            template += prefix
            names.append(name)
            formats.append("<f8" if code == "d" else "?")
            offsets.append(len(template))
            template += bytes(8 if code == "d" else 1)
        self.template = np.frombuffer(template, dtype=np.uint8)
        self.dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": len(template)})

    def encode(self, values: dict[str, np.ndarray]) -> bytes:
        """All records' attributes, one after the other."""
        raw = np.empty((len(next(iter(values.values()))), len(self.template)), dtype=np.uint8)
        raw[:] = self.template
        rows = raw.view(self.dtype)[:, 0]
        for name, column in values.items():
            rows[name] = column
        return raw.tobytes()


class AttributeWriter:
    """Appends the processor's output attributes to records.

    Parameters
    ----------
    signal
        Traces or logs.
    model_ids
        Models whose own scores go into ``otelml.score.<id>`` (empty unless verbose).

    Examples
    --------
    >>> writer = AttributeWriter(Signal.TRACES, ["ewm_mean"])
    >>> spans = [Span(), Span()]
    >>> writer.write(spans, score=np.array([0.9, 0.1]), anomaly=np.array([True, False]),
    ...              expected=np.array([12.5, np.nan]), forecast=np.zeros(2), slope=np.zeros(2),
    ...              predicted=np.zeros(2, dtype=bool), model_scores=np.array([[0.9, 0.1]]))
    >>> [kv.key for kv in spans[0].attributes][:3], spans[0].attributes[0].value.double_value
    (['otelml.score', 'otelml.anomaly', 'otelml.expected'], 0.9)
    >>> [kv.key for kv in spans[1].attributes][2]
    'otelml.forecast'
    """

    def __init__(self, signal: Signal, model_ids: list[str]):
        self.encoder = AttributeEncoder(signal)
        double, boolean = self.encoder.double_prefix, self.encoder.bool_prefix
        head = [("score", double(SCORE), "d"), ("anomaly", boolean(ANOMALY), "?")]
        tail = [("forecast", double(FORECAST), "d"), ("slope", double(SLOPE), "d"), ("predicted", boolean(PREDICTED), "?")]
        tail += [(f"model{position}", double(MODEL_SCORE + model_id), "d") for position, model_id in enumerate(model_ids)]
        self.with_expected = _Layout(head + [("expected", double(EXPECTED), "d")] + tail)
        self.without_expected = _Layout(head + tail)

    def write(self, records: list, score: np.ndarray, anomaly: np.ndarray, expected: np.ndarray, forecast: np.ndarray,
              slope: np.ndarray, predicted: np.ndarray, model_scores: np.ndarray | None) -> None:
        """Append the attributes to every record; ``expected`` is NaN where there is none."""
        values = {"score": score, "anomaly": anomaly, "expected": expected, "forecast": forecast, "slope": slope,
                  "predicted": predicted}
        if model_scores is not None:
            values.update((f"model{position}", row) for position, row in enumerate(model_scores))
        has_expected = expected == expected
        with_count = int(np.count_nonzero(has_expected))
        # Both layouts' encodings in one buffer: records with an expected value first.
        order = np.argsort(~has_expected, kind="stable")
        with_size, without_size = len(self.with_expected.template), len(self.without_expected.template)
        encoded = b""
        if with_count:
            encoded += self.with_expected.encode({name: column[order[:with_count]] for name, column in values.items()})
        if with_count < len(records):
            encoded += self.without_expected.encode({name: column[order[with_count:]] for name, column in values.items()
                                                     if name != "expected"})
        sizes = np.where(has_expected, with_size, without_size)
        starts = np.empty(len(records), dtype=np.int64)
        starts[order] = np.cumsum(sizes[order]) - sizes[order]
        # Bytes slices: protobuf merges them faster than memoryview slices.
        for record, start, size in zip(records, starts.tolist(), sizes.tolist()):
            attributes = record.attributes
            if attributes and attributes[-1].key.startswith(PREFIX):
                _drop_previous(attributes)
            record.MergeFromString(encoded[start:start + size])

    def write_alert(self, record, reason: str, key: str, actual: float) -> None:
        """The details an alert needs, on a flagged record only."""
        encoder = self.encoder
        record.MergeFromString(encoder.string(REASON, reason) + encoder.string(KEY, key) + encoder.double(ACTUAL, actual))


def _drop_previous(attributes) -> None:
    """Remove ``otelml.*`` attributes an earlier scoring left (a replayed or re-scored record)."""
    kept = [kv for kv in attributes if not kv.key.startswith(PREFIX)]
    del attributes[:]
    attributes.extend(kept)
