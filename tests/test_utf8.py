"""Lenient decoding (otelml.utf8) against the strict decoder: invalid UTF-8 is repaired, never refused or crashed on."""

from __future__ import annotations

import json

import aiohttp
import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from otelml import encoding, utf8
from otelml.encoding import BatchBuilder, Encoding
from otelml.pdata import Signal, count_items, from_json, from_proto, to_json
from otelml.synthetic import make_trace_request
from tests.reliability.conftest import capture, receiver_address, running_service
from tests.reliability.faults import TRACE_EXPORT

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAD = b"\xff\xfe\xfdBAD\xc3\x28XX"  # the value: lone continuation bytes and a broken two-byte sequence
TwinRequest = utf8.bytes_schema(Signal.TRACES)


def repaired_text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def is_utf8(value: bytes) -> bool:
    return repaired_text(value).encode() == value  # repairing changes exactly what is not UTF-8


# A request as nested lists of raw strings: resources of (attributes, scopes of (name, spans of (name, attributes))).
def request_shapes(strings: st.SearchStrategy[bytes]) -> st.SearchStrategy[list]:
    attributes = st.lists(st.tuples(strings, strings), max_size=3)
    spans = st.lists(st.tuples(strings, attributes), max_size=4)
    scopes = st.lists(st.tuples(strings, spans), max_size=2)
    return st.lists(st.tuples(attributes, scopes), max_size=3)


utf8_strings = st.text(max_size=12).map(str.encode)
requests = request_shapes(st.one_of(utf8_strings, st.binary(max_size=12), st.sampled_from([BAD, b"\xed\xa0\x80", b"\xc3"])))


def build(request_class, shape, text):
    """A request of ``shape`` with each raw string turned into a field value by ``text``."""
    request = request_class()
    for resource_attributes, resource_scopes in shape:
        resource_spans = request.resource_spans.add()
        for key, value in resource_attributes:
            resource_spans.resource.attributes.add(key=text(key)).value.string_value = text(value)
        for scope_name, scope_spans in resource_scopes:
            scope = resource_spans.scope_spans.add()
            scope.scope.name = text(scope_name)
            for span_name, span_attributes in scope_spans:
                span = scope.spans.add(trace_id=b"t" * 16, span_id=b"s" * 8, name=text(span_name))
                for key, value in span_attributes:
                    span.attributes.add(key=text(key)).value.string_value = text(value)
    return request


def expected_repaired(shape) -> int:
    """Spans holding invalid UTF-8 themselves or through their scope or resource."""

    def bad(values) -> bool:
        return not all(is_utf8(v) for v in values)

    count = 0
    for resource_attributes, resource_scopes in shape:
        resource_bad = bad(v for pair in resource_attributes for v in pair)
        for scope_name, scope_spans in resource_scopes:
            scope_bad = resource_bad or bad([scope_name])
            count += sum(
                1
                for name, span_attributes in scope_spans
                if scope_bad or bad([name, *(v for pair in span_attributes for v in pair)])
            )
    return count


@FUZZ
@given(shape=requests)
@example(shape=[([], [(b"scope", [(b"checkout", [(b"card", BAD)]), (b"fine", [])])])])
def test_lenient_protobuf_repairs_what_the_strict_decoder_refuses_and_keeps_the_rest(shape):
    wire = build(TwinRequest, shape, bytes).SerializeToString()
    batch, repaired = utf8.parse_proto(wire, Signal.TRACES)
    assert batch == build(Signal.TRACES.request_type, shape, repaired_text)
    assert repaired == expected_repaired(shape)


@FUZZ
@given(shape=request_shapes(utf8_strings))
def test_on_valid_input_lenient_and_strict_decoders_agree(shape):
    wire = build(TwinRequest, shape, bytes).SerializeToString()
    assert utf8.parse_proto(wire, Signal.TRACES) == (from_proto(wire, Signal.TRACES), 0)
    text = to_json(from_proto(wire, Signal.TRACES))
    assert utf8.parse_json(text, Signal.TRACES) == (from_json(text, Signal.TRACES), 0)


def strict_outcome(decoder, data: bytes):
    try:
        return decoder(data, Signal.TRACES)
    except ValueError:
        return None


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=400), requests.map(lambda shape: build(TwinRequest, shape, bytes).SerializeToString())),
    cut=st.integers(0, 400),
    flip=st.integers(0, 400),
)
def test_lenient_protobuf_never_crashes_and_refuses_only_what_is_not_protobuf(data, cut, flip):
    mangled = bytearray(data[: len(data) - cut % (len(data) + 1)])
    if mangled:
        mangled[flip % len(mangled)] ^= 0x80
    mangled = bytes(mangled)
    try:
        batch, repaired = utf8.parse_proto(mangled, Signal.TRACES)
    except ValueError:
        # Refused only when even the schema without UTF-8 checks cannot read it.
        with pytest.raises(DecodeError):
            TwinRequest.FromString(mangled)
        return
    strict = strict_outcome(from_proto, mangled)
    if strict is not None:
        assert (batch, repaired) == (strict, 0)
    else:  # repaired: valid UTF-8 everywhere now
        assert from_proto(batch.SerializeToString(), Signal.TRACES) == batch


@FUZZ
@given(data=st.binary(max_size=300))
def test_lenient_json_never_crashes(data):
    try:
        batch, repaired = utf8.parse_json(data, Signal.TRACES)
    except ValueError:
        return
    strict = strict_outcome(from_json, data)
    if strict is not None:
        assert (batch, repaired) == (strict, 0)
    else:
        assert from_proto(batch.SerializeToString(), Signal.TRACES) == batch


def test_one_bad_span_of_a_thousand_is_repaired_and_every_other_one_kept_unchanged():
    request = make_trace_request(spans=1000)
    request.resource_spans[7].scope_spans[0].spans[1].attributes.add(key="card").value.string_value = "PLACEHOLDER"
    wire = request.SerializeToString().replace(b"PLACEHOLDER", BAD + b"\0")
    with pytest.raises(ValueError):
        from_proto(wire, Signal.TRACES)
    batch, repaired = utf8.parse_proto(wire, Signal.TRACES)
    request.resource_spans[7].scope_spans[0].spans[1].attributes[-1].value.string_value = repaired_text(BAD + b"\0")
    assert (batch, repaired) == (request, 1)


@pytest.mark.parametrize(
    "bad, repaired",
    [
        (b"\xff\xfe", "\ufffd\ufffd"),  # bytes that are not UTF-8
        (b"\\ud800x", "\ufffdx"),  # an escaped lone surrogate
        (b"\\udfff\\ud800", "\ufffd\ufffd"),  # two lone ones, in the wrong order for a pair
    ],
)
def test_json_with_invalid_utf8_or_lone_surrogates_is_repaired(bad, repaired):
    request = make_trace_request(spans=100)
    request.resource_spans[3].scope_spans[0].spans[0].name = "PLACEHOLDER"
    request.resource_spans[4].resource.attributes[0].value.string_value = "PLACEHOLDER"
    batch, count = utf8.parse_json(to_json(request).replace(b"PLACEHOLDER", bad), Signal.TRACES)
    assert batch.resource_spans[3].scope_spans[0].spans[0].name == repaired
    assert batch.resource_spans[4].resource.attributes[0].value.string_value == repaired
    assert count == 1 + len(request.resource_spans[4].scope_spans[0].spans)


@pytest.mark.parametrize("body", [b'{"resourceSpans": [{"x": "\\q"}]}', b'{"resourceSpans": "\xff"', b'{"resourceSpans": 1}'])
def test_json_that_is_broken_for_another_reason_is_still_refused(body):
    with pytest.raises(ValueError):
        utf8.parse_json(body, Signal.TRACES)


def test_a_lone_surrogate_in_a_field_name_is_repaired_not_crashed_on():
    # Protobuf's JSON parser failed inside on such a name (SystemError): HTTP answered 500 with a traceback,
    # and a Kafka or MQTT message with it was not skipped as undecodable.
    document = b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"\\ud800": 1, "body": {"stringValue": "kept"}}]}]}]}'
    batch, repaired = utf8.parse_json(document, Signal.LOGS)
    assert (batch.resource_logs[0].scope_logs[0].log_records[0].body.string_value, repaired) == ("kept", 1)


def test_surrogate_pairs_are_characters_not_repairs():
    document = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "\U0001f600"}}]}]}]}).encode()
    assert b"\\ud83d\\ude00" in document
    batch, repaired = utf8.parse_json(document, Signal.LOGS)
    assert (batch.resource_logs[0].scope_logs[0].log_records[0].body.string_value, repaired) == ("\U0001f600", 0)


def test_metric_points_are_the_items_counted():
    twin = utf8.bytes_schema(Signal.METRICS)()
    metric = twin.resource_metrics.add().scope_metrics.add().metrics.add(name=BAD)
    metric.gauge.data_points.add().as_int = 1
    metric.gauge.data_points.add().as_int = 2
    batch, repaired = utf8.parse_proto(twin.SerializeToString(), Signal.METRICS)
    assert (batch.resource_metrics[0].scope_metrics[0].metrics[0].name, repaired) == (repaired_text(BAD), 2)


@pytest.mark.parametrize(
    "kind, payload, body",
    [
        (Encoding.TEXT, b"disk " + BAD, "disk " + repaired_text(BAD)),
        (Encoding.JSON, b'{"msg": "' + BAD + b'", "unit": "\\udc00C"}', {"msg": repaired_text(BAD), "unit": "\ufffdC"}),
    ],
)
def test_record_encodings_repair_and_count(kind, payload, body):
    builder = BatchBuilder(Signal.LOGS, kind)
    builder.add(b"fine" if kind is Encoding.TEXT else b'{"msg": "fine"}')
    builder.add(payload)
    record = builder.batch.resource_logs[0].scope_logs[0].log_records[1]
    assert encoding.any_value_to_python(record.body) == body
    assert (builder.items, builder.repaired) == (2, 1)


def test_whole_batch_encodings_repair_and_count():
    request = make_trace_request(spans=10)
    request.resource_spans[0].scope_spans[0].spans[0].name = "PLACEHOLDER"
    builder = BatchBuilder(Signal.TRACES, Encoding.OTLP_PROTO)
    builder.add(request.SerializeToString().replace(b"PLACEHOLDER", BAD + b"\0"))
    bare_resources = b"[" + to_json(request).split(b"[", 1)[1][:-1].replace(b"PLACEHOLDER", b"\xff")
    json_builder = BatchBuilder(Signal.TRACES, Encoding.OTLP_JSON)
    json_builder.add(bare_resources)
    assert (builder.items, builder.repaired, json_builder.items, json_builder.repaired) == (10, 1, 10, 1)
    assert count_items(json_builder.batch) == 10


# --- the otlp receiver -------------------------------------------------------


def receiver_pipeline() -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"capture": {}},
        "service": {
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["capture"]}},
            "telemetry": {"metrics": {"readers": []}},
        },
    }


def request_with_one_bad_value() -> tuple[bytes, ExportTraceServiceRequest]:
    """A 1000-span request whose one attribute value holds invalid UTF-8 on the wire, and what should arrive."""
    request = make_trace_request(spans=1000)
    request.resource_spans[7].scope_spans[0].spans[1].attributes.add(key="card").value.string_value = "PLACEHOLDER"
    wire = request.SerializeToString().replace(b"PLACEHOLDER", BAD + b"!")
    request.resource_spans[7].scope_spans[0].spans[1].attributes[-1].value.string_value = repaired_text(BAD + b"!")
    return wire, request


async def test_a_request_with_one_invalid_utf8_value_is_accepted_over_grpc_and_http_with_every_span():
    wire, expected = request_with_one_bad_value()
    async with running_service(receiver_pipeline()) as service:
        async with grpc.aio.insecure_channel(receiver_address(service, "grpc")) as channel:
            export = channel.unary_unary(
                TRACE_EXPORT, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
            )
            response = await export(wire, timeout=10)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://{receiver_address(service, 'http')}/v1/traces",
                data=wire,
                headers={"Content-Type": "application/x-protobuf"},
            ) as answer:
                assert answer.status == 200
                http_response = ExportTraceServiceResponse.FromString(await answer.read())
        assert response.partial_success.rejected_spans == http_response.partial_success.rejected_spans == 0
        assert capture(service).batches == [expected, expected]
        for transport in ("grpc", "http"):
            assert service.telemetry.value("otelml_receiver_repaired_spans_total", receiver="otlp", transport=transport) == 1
            assert service.telemetry.value("otelcol_receiver_accepted_spans_total", receiver="otlp", transport=transport) == 1000


async def test_otlp_json_with_a_lone_surrogate_is_accepted_and_counted():
    request = make_trace_request(spans=10)
    request.resource_spans[0].scope_spans[0].spans[0].name = "PLACEHOLDER"
    body = to_json(request).replace(b"PLACEHOLDER", b"pay\\ud800")
    async with running_service(receiver_pipeline()) as service:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://{receiver_address(service, 'http')}/v1/traces", data=body, headers={"Content-Type": "application/json"}
            ) as answer:
                assert answer.status == 200
        [batch] = capture(service).batches
        assert batch.resource_spans[0].scope_spans[0].spans[0].name == "pay\ufffd"
        assert count_items(batch) == 10
        assert service.telemetry.value("otelml_receiver_repaired_spans_total", receiver="otlp", transport="http") == 1
