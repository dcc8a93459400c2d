"""Generated Kafka and MQTT payloads against the shared decoder (``otelml.encoding``).

Its contract: ``BatchBuilder.add`` either returns the items a payload held
or raises ``ValueError``, leaving the batch as it was, so that a receiver
can skip (and count) a bad message and go on with the rest of its fetch.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from otelml.encoding import SIGNAL_ENCODINGS, BatchBuilder, Encoding, encode_batch
from otelml.pdata import Signal, count_items, to_json
from otelml.synthetic import make_logs_request, make_trace_request
from tests.reliability.test_fuzz import FUZZ, json_documents, mutated, trace_requests

pytestmark = pytest.mark.integration

PAIRS = [(signal, encoding) for signal, encodings in SIGNAL_ENCODINGS.items() for encoding in sorted(encodings)]

# A good message the builder takes before the fuzzed one, so that "intact" means something.
FIRST_REQUESTS = {
    Signal.TRACES: make_trace_request(spans=2, services=1),
    Signal.LOGS: make_logs_request(records=2, services=1),
    Signal.METRICS: Signal.METRICS.request_type(),
}
FIRST_RECORDS = {Encoding.RAW: b"\x00\x01", Encoding.TEXT: b"first", Encoding.JSON: b'{"temperature": 20}'}


def first_message(signal: Signal, encoding: Encoding) -> bytes:
    if encoding in FIRST_RECORDS:
        return FIRST_RECORDS[encoding]
    return encode_batch(FIRST_REQUESTS[signal], encoding)


timestamps = st.one_of(
    st.integers(-(10**25), 10**25),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.123456789+02:00",
            "2026-01-01T00:00:00",
            "1700000000",
            "1.7e9",
            "-5",
            "nan",
            "inf",
        ]
    ),
)
readings = st.dictionaries(
    st.sampled_from(["ts", "temperature", "meta", "device"]),
    st.one_of(timestamps, json_documents, st.dictionaries(st.sampled_from(["ts", "unit"]), timestamps, max_size=2)),
    max_size=4,
)


def payloads(signal: Signal):
    otlp = trace_requests() if signal is Signal.TRACES else st.just(signal.request_type())
    return st.one_of(
        st.binary(max_size=500),
        mutated(otlp.map(lambda r: r.SerializeToString())),
        mutated(otlp.map(to_json)),
        readings.map(lambda document: json.dumps(document, allow_nan=True).encode()),
        json_documents.map(lambda document: json.dumps(document).encode()),
    )


@pytest.mark.parametrize("signal, encoding", PAIRS, ids=[f"{s.value}-{e.value}" for s, e in PAIRS])
@FUZZ
@given(data=st.data())
def test_a_payload_is_decoded_or_refused_with_value_error_leaving_the_batch_intact(signal, encoding, data):
    builder = BatchBuilder(signal, encoding, flatten_json=True, timestamp_field="ts")
    builder.add(first_message(signal, encoding), resource_attributes={"device": "first"})
    before, items_before = builder.batch.SerializeToString(), builder.items
    payload = data.draw(payloads(signal))
    try:
        items = builder.add(
            payload, resource_attributes={"device": "d-1", "floor": 3}, record_attributes={"topic": "t/1"}, time_ns=5
        )
    except ValueError:
        assert (builder.batch.SerializeToString(), builder.items) == (before, items_before)
        return
    assert items >= 0 and builder.items == items_before + items
    assert count_items(builder.batch) == builder.items


@FUZZ
@given(stamp=timestamps)
@example(stamp=10**25)
@example(stamp=-1)
@example(stamp=math.inf)
def test_a_json_reading_takes_a_usable_time_or_is_refused(stamp):
    builder = BatchBuilder(Signal.LOGS, Encoding.JSON, flatten_json=True, timestamp_field="meta.ts")
    payload = json.dumps({"meta": {"ts": stamp}, "temperature": 21.5}, allow_nan=True).encode()
    try:
        builder.add(payload, time_ns=5)
    except ValueError:
        assert builder.items == 0
        return
    record = builder.batch.resource_logs[0].scope_logs[0].log_records[0]
    assert 0 <= record.time_unix_nano < 2**64
