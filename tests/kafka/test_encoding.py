"""Payload encodings (otelml/encoding.py) and the Kafka exporter's message cutting, without a broker."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

import otelml.encoding
import otelml.exporters.kafka.messages
import otelml.receivers.mqtt.topics
from otelml import pdata
from otelml.configmodel import nested_problems
from otelml.encoding import BatchBuilder, Encoding, encode_log_record, parse_timestamp
from otelml.exporters.kafka.config import KafkaExporterConfig
from otelml.exporters.kafka.messages import fit, split_by_trace_id
from otelml.pdata import Signal, count_items
from otelml.receivers.kafka.config import KafkaReceiverConfig
from tests.kafka.support import gauge_metrics, numbered_logs, traces


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
@pytest.mark.parametrize("batch", [traces(3, 2), numbered_logs(0, 5), gauge_metrics(4)], ids=["traces", "logs", "metrics"])
def test_whole_batch_encodings_round_trip(batch, encoding):
    signal = Signal.of(batch)
    builder = BatchBuilder(signal, Encoding(encoding))
    payload = otelml.encoding.encode_batch(batch, Encoding(encoding))
    assert builder.add(payload) == count_items(batch)
    assert builder.add(payload, resource_attributes={"kafka.header.tenant": "acme"}) == count_items(batch)
    resources = getattr(builder.batch, signal.resource_field)
    assert resources[0] == getattr(batch, signal.resource_field)[0]
    tagged = {kv.key: kv.value.string_value for kv in resources[-1].resource.attributes}
    assert tagged["kafka.header.tenant"] == "acme"


def test_otlp_json_ids_are_hex_and_a_bare_resource_array_is_accepted():
    batch = traces(1, 1)
    document = json.loads(otelml.encoding.encode_batch(batch, Encoding.OTLP_JSON))
    assert (
        document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
        == batch.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    )
    builder = BatchBuilder(Signal.TRACES, Encoding.OTLP_JSON)
    builder.add(json.dumps(document["resourceSpans"]).encode())
    assert builder.batch == batch


@pytest.mark.parametrize(
    "encoding, payload",
    [
        ("otlp_proto", b"\x00\xff\xff garbage"),
        ("otlp_json", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not hex"}]}]}]}'),
        ("otlp_json", b"\x0a\x02proto bytes"),
    ],
)
def test_undecodable_batches_raise_value_error_and_leave_the_batch_unchanged(encoding, payload):
    builder = BatchBuilder(Signal.TRACES, Encoding(encoding))
    with pytest.raises(ValueError):
        builder.add(payload)
    assert builder.items == 0 and builder.batch == pdata.Signal.TRACES.request_type()


@pytest.mark.parametrize(
    "encoding, payload, problem",
    [
        ("json", b"[1, 2]", "object"),
        ("json", b"{broken", "invalid JSON"),
        ("json", b"[" * 100_000, "JSON"),
        # Beyond a double: it used to raise OverflowError, which ended the mqtt receiver's worker.
        ("json", b'{"reading": ' + b"9" * 400 + b"}", "400 digits"),
        ("json", b'{"readings": [1, -' + b"9" * 400 + b"]}", "400 digits"),
    ],
)
def test_undecodable_records(encoding, payload, problem):
    with pytest.raises(ValueError, match=problem):
        BatchBuilder(Signal.LOGS, Encoding(encoding)).add(payload)


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_json_nested_deeper_than_otlp_can_carry_is_refused_leaving_the_batch_unchanged():
    builder = BatchBuilder(Signal.LOGS, Encoding.JSON)
    builder.add(b'{"first": 1}', {"device.id": "a"})
    before = builder.batch.SerializeToString()
    # Deep enough for protobuf to refuse the record itself, and just deep enough for it to refuse the request.
    for depth in (40, otelml.encoding.MAX_JSON_DEPTH + 1):
        with pytest.raises(ValueError, match="nested deeper"):
            builder.add(nested_objects(depth), {"device.id": "b"})
        assert builder.batch.SerializeToString() == before and builder.items == 1
    # The deepest body taken still reads back as OTLP protobuf, so that it can be sent on.
    builder.add(nested_objects(otelml.encoding.MAX_JSON_DEPTH), {"device.id": "b"})
    assert count_items(pdata.from_proto(builder.batch.SerializeToString(), Signal.LOGS)) == 2


def test_record_encodings_group_records_by_resource():
    builder = BatchBuilder(Signal.LOGS, Encoding.JSON, flatten_json=True, timestamp_field="at")
    builder.add(b'{"v": 1, "at": "2024-05-01T12:00:00Z"}', {"device.id": "a"}, {"mqtt.topic": "s/a"})
    builder.add(b'{"v": 2}', {"device.id": "b"}, {"mqtt.topic": "s/b"}, time_ns=5)
    builder.add(b'{"v": 3}', {"device.id": "a"}, {"mqtt.topic": "s/a"})
    assert [len(r.scope_logs[0].log_records) for r in builder.batch.resource_logs] == [2, 1]
    first, second = (
        builder.batch.resource_logs[0].scope_logs[0].log_records[0],
        builder.batch.resource_logs[1].scope_logs[0].log_records[0],
    )
    assert first.time_unix_nano == 1_714_564_800 * 10**9
    assert second.time_unix_nano == 5


@pytest.mark.parametrize(
    "value, nanos",
    [
        (1_700_000_000, 1_700_000_000 * 10**9),
        (1_700_000_000.25, 1_700_000_000_250_000_000),
        (1_700_000_000_123, 1_700_000_000_123 * 10**6),
        (1_700_000_000_123_456, 1_700_000_000_123_456 * 10**3),
        (1_700_000_000_123_456_789, 1_700_000_000_123_456_789),
        ("1700000000", 1_700_000_000 * 10**9),
        ("1700000000.123456789", 1_700_000_000_123_456_789),
        ("2023-11-14T22:13:20+01:00", (1_700_000_000 - 3600) * 10**9),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123_456_789),
    ],
)
def test_timestamps(value, nanos):
    assert parse_timestamp(value) == nanos


# A huge exponent is refused from its magnitude: expanding it into an integer took minutes.
@pytest.mark.parametrize(
    "value", ["yesterday", "2023-11-14T22:13:20", True, None, float("nan"), -1, "1e999999", 2**64, 99_999_999_999]
)
def test_bad_timestamps(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_record_payloads():
    record = LogRecord()
    record.body.bytes_value = b"\xff\x01"
    assert encode_log_record(record, Encoding.RAW) == b"\xff\x01"
    with pytest.raises(ValueError):
        encode_log_record(record, Encoding.TEXT)
    record.body.kvlist_value.values.add(key="k").value.int_value = 3
    assert json.loads(encode_log_record(record, Encoding.JSON)) == {"k": 3}
    with pytest.raises(ValueError):
        encode_log_record(record, Encoding.OTLP_PROTO)


def test_split_by_trace_id_keeps_every_span_once():
    batch = traces(7, 5, services=3)
    pieces = split_by_trace_id(batch)
    assert len(pieces) == 7
    assert sum(count_items(p) for p in pieces.values()) == 35
    for trace_id, piece in pieces.items():
        assert {s.trace_id for rs in piece.resource_spans for ss in rs.scope_spans for s in ss.spans} == {trace_id}


def test_fit_halves_until_every_message_fits_and_sets_apart_a_lone_oversized_item():
    batch = gauge_metrics(2000)
    pieces = list(fit(batch, Encoding.OTLP_PROTO, None, 4096))
    assert len(pieces) > 1 and all(len(p.value) < p.size <= 4096 for p in pieces)
    assert [count_items(pdata.from_proto(p.value, Signal.METRICS)) for p in pieces] == [p.items for p in pieces]
    assert sum(p.items for p in pieces) == 2000
    (alone,) = fit(gauge_metrics(1), Encoding.OTLP_PROTO, b"k" * 5000, 4096)
    assert alone.items == 1 and alone.size > 4096


def test_config_problems_name_their_fields():
    receiver = KafkaReceiverConfig.model_validate(
        {
            "brokers": "nohost",
            "group_id": "",
            "traces": {"encoding": "json"},
            "logs": {"topics": ["otlp_spans"]},
            "heartbeat_interval": "20s",
        }
    )
    assert nested_problems(receiver) == [
        "brokers::0: 'nohost' is not host:port",
        "group_id: must not be empty",
        "heartbeat_interval: must be positive and shorter than session_timeout",
        "traces::encoding: encoding 'json' cannot carry traces (use one of: otlp_json, otlp_proto)",
        "logs::topics: 'otlp_spans' is already a traces topic",
    ]
    exporter = KafkaExporterConfig.model_validate(
        {"metrics": {"encoding": "raw"}, "auth": {"sasl": {"username": "u"}}, "timeout": "-1s"}
    )
    assert nested_problems(exporter) == [
        "timeout: must not be negative",
        "metrics::encoding: encoding 'raw' cannot carry metrics (use one of: otlp_json, otlp_proto)",
        "auth::sasl::password: required for SASL",
    ]
