"""Generated and hostile OTLP bodies against the receiver's HTTP and gRPC handlers.

No input may crash a handler, hang it, or make memory grow without bound,
and each gets the answer the receiver documents: 200 (perhaps with partial
success) for a decodable request, 400 / INVALID_ARGUMENT for one that is
not, 413 / RESOURCE_EXHAUSTED above the size limits, 415 for other content
types. What counts as decodable is decided by ``otelml.utf8`` itself, the
same decoders the handlers use (lenient about invalid UTF-8); the point is
that every path through the handlers ends in a documented answer.

The service runs in-process on a background event loop, so that
hypothesis can drive it from plain (synchronous) test functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import json
import threading
import time
import zlib

import grpc
import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otelml.pdata import Signal, to_json
from otelml.process import resident_bytes
from otelml.utf8 import parse_json, parse_proto
from tests.reliability.conftest import receiver_address, running_service
from tests.reliability.faults import TRACE_EXPORT

pytestmark = pytest.mark.integration

MIB = 1 << 20
LIMIT = MIB  # both receivers' size limit in these tests
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class BackgroundService:
    """A running service on an event loop in another thread."""

    def __init__(self, document: dict):
        self.document = document
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-service")

    def __enter__(self) -> BackgroundService:
        self.thread.start()
        self._context = running_service(self.document)
        self.service = self.run(self._context.__aenter__())
        self.http = receiver_address(self.service, "http")
        self.grpc = receiver_address(self.service, "grpc")
        return self

    def __exit__(self, *exc) -> None:
        self.run(self._context.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


@pytest.fixture(scope="module")
def receiver():
    document = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "127.0.0.1:0", "max_recv_msg_size_mib": 1},
                    "http": {"endpoint": "127.0.0.1:0", "max_request_body_size": LIMIT},
                }
            }
        },
        "exporters": {"capture": {}},
        "service": {
            "pipelines": {s: {"receivers": ["otlp"], "exporters": ["capture"]} for s in ("traces", "logs", "metrics")},
            "telemetry": {"metrics": {"level": "none"}},
        },
    }
    with BackgroundService(document) as background:
        yield background


@pytest.fixture(scope="module")
def http_connection(receiver):
    host, port = receiver.http.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def grpc_export(receiver):
    with grpc.insecure_channel(receiver.grpc, options=[("grpc.max_send_message_length", 64 * MIB)]) as channel:
        yield channel.unary_unary(
            TRACE_EXPORT, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )


def post(
    connection: http.client.HTTPConnection,
    body: bytes,
    content_type: str = "application/x-protobuf",
    encoding: str | None = None,
    path: str = "/v1/traces",
) -> tuple[int, bytes]:
    headers = {"Content-Type": content_type} | ({"Content-Encoding": encoding} if encoding else {})
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (http.client.HTTPException, OSError):
        connection.close()  # the server may close after an error; the next request reconnects
        raise


# --- strategies ------------------------------------------------------------

ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
int64 = st.integers(-(2**63), 2**63 - 1)
uint64 = st.integers(0, 2**64 - 1)
any_values = st.recursive(
    st.one_of(
        st.builds(AnyValue, string_value=st.text(max_size=30)),
        st.builds(AnyValue, int_value=int64),
        st.builds(AnyValue, double_value=st.floats(allow_nan=False)),
        st.builds(AnyValue, bool_value=st.booleans()),
        st.builds(AnyValue, bytes_value=st.binary(max_size=30)),
    ),
    lambda children: st.builds(lambda values: _array(values), st.lists(children, max_size=4)),
    max_leaves=10,
)


def _array(values: list[AnyValue]) -> AnyValue:
    value = AnyValue()
    value.array_value.values.extend(values)
    return value


@st.composite
def trace_requests(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        resource_spans = request.resource_spans.add()
        for key, value in draw(st.dictionaries(st.text(max_size=15), any_values, max_size=4)).items():
            resource_spans.resource.attributes.add(key=key).value.CopyFrom(value)
        for _ in range(draw(st.integers(0, 2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = draw(st.text(max_size=20))
            for _ in range(draw(st.integers(0, 5))):
                span = scope_spans.spans.add(
                    trace_id=draw(ids),
                    span_id=draw(ids),
                    parent_span_id=draw(st.binary(max_size=8)),
                    name=draw(st.text(max_size=40)),
                    kind=draw(st.sampled_from(list(Span.SpanKind.values()))),
                    start_time_unix_nano=draw(uint64),
                    end_time_unix_nano=draw(uint64),
                )
                for key, value in draw(st.dictionaries(st.text(max_size=15), any_values, max_size=5)).items():
                    span.attributes.add(key=key).value.CopyFrom(value)
                span.status.code = draw(st.sampled_from([0, 1, 2]))
    return request


@st.composite
def mutated(draw, bodies) -> bytes:
    """``bodies`` with bytes flipped, cut, inserted or repeated."""
    data = bytearray(draw(bodies))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        position = draw(st.integers(0, len(data)))
        if operation == "flip" and position < len(data):
            data[position] ^= draw(st.integers(1, 255))
        elif operation == "cut":
            del data[position : position + draw(st.integers(1, 64))]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "repeat":
            data[position:position] = data[position : position + draw(st.integers(1, 64))] * draw(st.integers(2, 4))
    return bytes(data)


OTLP_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "resource",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "arrayValue",
    "values",
    "kvlistValue",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "status",
    "code",
    "startTimeUnixNano",
    "events",
    "links",
    "scope",
    "droppedAttributesCount",
]
json_documents = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=20),
        st.sampled_from(["00" * 16, "00" * 8, "zz", "", "-1", "1e400"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(OTLP_KEYS), st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=25,
)


def decodes(decoder, body: bytes) -> bool:
    """Whether ``decoder`` takes ``body``; its only documented failure is ValueError."""
    try:
        decoder(body, Signal.TRACES)
    except ValueError:
        return False
    return True


def rejected_ids(request: ExportTraceServiceRequest) -> int:
    return sum(
        1
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
        if len(span.trace_id) != 16
        or len(span.span_id) != 8
        or len(span.parent_span_id) not in (0, 8)  # empty: a root span
        or any(len(link.trace_id) != 16 or len(link.span_id) != 8 for link in span.links)
    )


# --- HTTP ------------------------------------------------------------------


@FUZZ
@given(request=trace_requests())
def test_http_generated_requests_are_accepted_with_partial_success_for_bad_ids(http_connection, request):
    body = request.SerializeToString()
    status, answer = post(http_connection, body)
    assert status == 200
    assert ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans == rejected_ids(request)
    status, answer = post(http_connection, to_json(request), "application/json")
    assert status == 200
    assert int(json.loads(answer).get("partialSuccess", {}).get("rejectedSpans", 0)) == rejected_ids(request)


@FUZZ
@given(body=st.one_of(mutated(trace_requests().map(lambda r: r.SerializeToString())), st.binary(max_size=2000)))
@example(body=b"\x0a\xff\xff\xff\xff\x0f")  # a length far beyond the body
@example(body=b"\x0a\x02\x0a" * 40_000)  # deep nesting
def test_http_protobuf_bodies_get_200_or_400(http_connection, body):
    status, _ = post(http_connection, body)
    assert status == (200 if decodes(parse_proto, body) else 400)


@FUZZ
@given(document=json_documents)
@example(document={"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]})
def test_http_json_documents_get_200_or_400(http_connection, document):
    body = json.dumps(document).encode()
    status, _ = post(http_connection, body, "application/json")
    assert status == (200 if decodes(parse_json, body) else 400)


@FUZZ
@given(body=st.one_of(mutated(trace_requests().map(to_json)), st.binary(max_size=500)))
@example(body=b"[" * 100_000)
@example(body=b'{"resourceSpans": [' + b'{"a": ' * 5000)
@example(body=b'{"resourceSpans": ' + b"[" * 990 + b"]" * 990 + b"}")
def test_http_json_bodies_get_200_or_400(http_connection, body):
    status, _ = post(http_connection, body, "application/json")
    assert status == (200 if decodes(parse_json, body) else 400)


@FUZZ
@given(
    body=st.binary(max_size=300),
    encoding=st.sampled_from(["gzip", "deflate", "zstd", "br", "GZIP", "identity, gzip"]),
    compress=st.booleans(),
)
def test_http_encoded_bodies_get_200_400_or_413(http_connection, body, encoding, compress):
    compressors = {"gzip": gzip.compress, "deflate": zlib.compress, "zstd": zstandard.ZstdCompressor().compress}
    sent = compressors[encoding.lower()](body) if compress and encoding.lower() in compressors else body
    status, _ = post(http_connection, sent, encoding=encoding)
    if encoding.lower() not in compressors:
        assert status == 400  # an unsupported Content-Encoding
    elif compress:
        assert status == (200 if decodes(parse_proto, body) else 400)
    else:
        assert status in (200, 400)  # bytes that happen to decompress are judged like any other body


@FUZZ
@given(
    content_type=st.one_of(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
        st.sampled_from(["application/JSON; charset=utf-8", "application/x-protobuf;q=1", "application/protobuf"]),
    ),
    signal=st.sampled_from(["traces", "logs", "metrics"]),
)
@example(content_type="';0*'", signal="traces")  # once a 500: the standard library's header parser raised on it
@example(content_type=";", signal="logs")
def test_http_other_content_types_get_415(http_connection, content_type, signal):
    main_type = content_type.split(";")[0].strip().lower()
    empty_request = b"{}" if main_type == "application/json" else b""
    status, _ = post(http_connection, empty_request, content_type, path=f"/v1/{signal}")
    assert status == (200 if main_type in ("application/x-protobuf", "application/json") else 415)


# --- gRPC ------------------------------------------------------------------


def grpc_code(export, body: bytes) -> grpc.StatusCode:
    try:
        export(body, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@FUZZ
@given(
    body=st.one_of(
        trace_requests().map(lambda r: r.SerializeToString()),
        mutated(trace_requests().map(lambda r: r.SerializeToString())),
        st.binary(max_size=2000),
    )
)
@example(body=b"\x0a\x02\x0a" * 40_000)
def test_grpc_bodies_get_ok_or_invalid_argument(grpc_export, body):
    assert grpc_code(grpc_export, body) == (
        grpc.StatusCode.OK if decodes(parse_proto, body) else grpc.StatusCode.INVALID_ARGUMENT
    )


# --- memory ----------------------------------------------------------------


@contextlib.contextmanager
def peak_growth():
    """Samples this process's RSS every few milliseconds; yields a list that ends up holding the peak growth."""
    baseline = resident_bytes()
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes() - baseline)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def zstd_bomb(size: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=19).compressobj()
    chunk = bytes(MIB)
    return b"".join(compressor.compress(chunk) for _ in range(size // MIB)) + compressor.flush()


def test_hostile_bodies_leave_memory_bounded(receiver, http_connection, grpc_export):
    bombs = {
        "zstd": zstd_bomb(512 * MIB),
        "deflate": zlib.compress(bytes(512 * MIB), 9),
        "gzip": gzip.compress(bytes(512 * MIB), 9),
    }
    nested = b"\x0a\x02\x0a" * 300_000  # under the gRPC limit, a message nested far too deeply
    with peak_growth() as growth:
        for _ in range(3):
            for encoding, bomb in bombs.items():
                assert post(http_connection, bomb, encoding=encoding)[0] == 413
            assert post(http_connection, b"\x0a\xff\xff\xff\xff\x07" + bytes(100), "application/x-protobuf")[0] == 400
            assert post(http_connection, bytes(2 * LIMIT))[0] == 413
            assert post(http_connection, b"[" * (LIMIT - 1), "application/json")[0] == 400
            assert grpc_code(grpc_export, nested) is grpc.StatusCode.INVALID_ARGUMENT
            assert grpc_code(grpc_export, bytes(3 * LIMIT)) is grpc.StatusCode.RESOURCE_EXHAUSTED
    # Each body is held a few times while it is decoded; nothing near the 512 MiB the bombs expand to.
    print(f"hostile bodies: peak RSS growth {growth[0] / MIB:.1f} MiB")
    assert growth[0] < 64 * MIB, f"memory grew by {growth[0] / MIB:.0f} MiB"
