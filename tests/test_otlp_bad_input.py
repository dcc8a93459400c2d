"""Hostile and broken requests: each gets the OTLP status it should, is counted, and the server keeps serving."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import zlib

import grpc
import pytest
import zstandard
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelml.synthetic import make_trace_request
from tests.conftest import free_port, metric, otlp_to_file_config

pytestmark = pytest.mark.integration

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def post(url: str, body: bytes, content_type: str = "application/x-protobuf", encoding: str | None = None):
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def grpc_export(endpoint: str, body: bytes):
    with grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        export = channel.unary_unary(
            TRACES_METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        return export(body, timeout=10)


def small_limits_config() -> dict:
    config = otlp_to_file_config()
    config["receivers"]["otlp"]["protocols"]["grpc"]["max_recv_msg_size_mib"] = 1
    config["receivers"]["otlp"]["protocols"]["http"]["max_request_body_size"] = 1 << 20
    return config


@pytest.fixture
def otelml(otelml_process):
    with otelml_process(small_limits_config()) as process:
        yield process


def test_http_bad_requests_get_the_right_status_and_are_counted(otelml):
    url = f"{otelml.http_url}/v1/traces"
    good = make_trace_request(spans=20).SerializeToString()

    status, _, body = post(url, b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert status == 400
    assert "invalid OTLP protobuf" in status_pb2.Status.FromString(body).message

    status, _, body = post(url, b'{"resourceSpans": [', "application/json")
    assert status == 400
    assert "invalid JSON" in json.loads(body)["message"]

    status, _, body = post(url, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json")
    assert status == 400 and "invalid hex" in json.loads(body)["message"]

    status, _, _ = post(url, good, "text/plain")
    assert status == 415

    for method in ("GET", "PUT", "DELETE"):
        request = urllib.request.Request(url, method=method)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        with caught.value as response:
            assert response.code == 405 and response.headers["Allow"] == "POST"

    status, _, _ = post(url, b"\x00" * (2 << 20))
    assert status == 413

    bomb = gzip.compress(b"\x00" * (200 << 20), compresslevel=9)  # 200 MiB of zeros in ~200 KB
    assert len(bomb) < (1 << 20)
    status, _, _ = post(url, bomb, encoding="gzip")
    assert status == 413

    status, _, _ = post(url, b"not gzip at all", encoding="gzip")
    assert status == 400

    status, _, _ = post(url, gzip.compress(good), encoding="gzip")
    assert status == 200

    samples = otelml.metrics()
    for reason, count in (
        ("malformed", 3),
        ("unsupported_media_type", 1),
        ("method_not_allowed", 3),
        ("too_large", 2),
        ("bad_encoding", 1),
    ):
        assert (
            metric(samples, "otelml_receiver_failed_requests_total", receiver="otlp", transport="http", reason=reason) == count
        ), reason
    assert metric(samples, "otelcol_receiver_accepted_spans_total", transport="http") == 20
    assert "refused a http request (malformed)" in otelml.log()
    assert otelml.log().count("refused a http request (method_not_allowed): GET /v1/traces") == 1


def test_http_compressed_bodies_are_read_whole_or_refused(otelml):
    url = f"{otelml.http_url}/v1/traces"
    first, second = make_trace_request(spans=3).SerializeToString(), make_trace_request(spans=4).SerializeToString()
    both = first + second  # concatenated protobuf is one request with the resources of both

    # Concatenated gzip members and zstd frames are one body; only the first used to be read, the rest dropped.
    for body, encoding in ((gzip.compress(first) + gzip.compress(second), "gzip"), (zstd(first) + zstd(second), "zstd")):
        status, _, _ = post(url, body, encoding=encoding)
        assert status == 200, encoding

    # A body cut short used to be read as far as it went: a cut zstd frame as an empty request, answered 200.
    cut = (
        (gzip.compress(both)[:-8], "gzip"),
        (zlib.compress(both)[:-4], "deflate"),
        (zstd(both)[:-4], "zstd"),
        (gzip.compress(first) + b"trailing bytes", "gzip"),
        (zlib.compress(first) + b"trailing bytes", "deflate"),
        (b"", "gzip"),
    )
    for body, encoding in cut:
        status, _, response = post(url, body, encoding=encoding)
        assert status == 400, (encoding, body[-20:])
        assert f"invalid {encoding} body" in status_pb2.Status.FromString(response).message

    samples = otelml.metrics()
    assert metric(samples, "otelcol_receiver_accepted_spans_total", transport="http") == 2 * 7
    assert metric(samples, "otelml_receiver_failed_requests_total", transport="http", reason="bad_encoding") == len(cut)
    assert otelml.log().count("refused a http request (bad_encoding)") == len(cut)


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def test_grpc_bad_requests_get_the_right_code_and_are_counted(otelml):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(otelml.grpc_endpoint, b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(otelml.grpc_endpoint, make_trace_request(spans=6000).SerializeToString())
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

    # Export is unary: a call that streams a second request used to be answered OK with the second one dropped.
    with grpc.insecure_channel(otelml.grpc_endpoint) as channel:
        export_stream = channel.stream_unary(
            TRACES_METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        with pytest.raises(grpc.RpcError) as caught:
            export_stream(iter([make_trace_request(spans=2).SerializeToString()] * 2), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    response = grpc_export(otelml.grpc_endpoint, make_trace_request(spans=30).SerializeToString())
    assert not response.HasField("partial_success")

    samples = otelml.metrics()
    assert metric(samples, "otelml_receiver_failed_requests_total", transport="grpc", reason="malformed") == 2
    assert metric(samples, "otelml_receiver_failed_requests_total", transport="grpc", reason="too_large") == 1
    assert metric(samples, "otelcol_receiver_accepted_spans_total", transport="grpc") == 30


def test_records_with_invalid_ids_are_refused_through_partial_success(otelml):
    request = make_trace_request(spans=10, services=1)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"short"
    spans[1].span_id = b""
    spans[2].parent_span_id = b"\x01" * 9
    spans[3].links.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 7)
    spans[4].links.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 8)  # a well-formed link
    spans[5].parent_span_id = b""  # a root span
    response = grpc_export(otelml.grpc_endpoint, request.SerializeToString())
    assert response.partial_success.rejected_spans == 4
    assert "16 bytes" in response.partial_success.error_message
    samples = otelml.metrics()
    assert metric(samples, "otelcol_receiver_refused_spans_total", transport="grpc") == 4
    assert metric(samples, "otelcol_receiver_accepted_spans_total", transport="grpc") == 6


def test_a_pipeline_that_cannot_take_data_asks_clients_to_retry(otelml_process):
    config = otlp_to_file_config()
    dead = f"127.0.0.1:{free_port()}"
    config["exporters"] = {
        "otlp": {
            "endpoint": dead,
            "tls": {"insecure": True},
            "timeout": "1s",
            "retry_on_failure": {"enabled": False},
            "sending_queue": {"enabled": False},
        }
    }
    config["processors"] = {}
    for pipeline in config["service"]["pipelines"].values():
        pipeline.update(processors=[], exporters=["otlp"])
    with otelml_process(config) as otelml:
        with pytest.raises(grpc.RpcError) as caught:
            grpc_export(otelml.grpc_endpoint, make_trace_request(spans=5).SerializeToString())
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        details = dict(caught.value.trailing_metadata())["grpc-status-details-bin"]
        info = error_details_pb2.RetryInfo()
        assert status_pb2.Status.FromString(details).details[0].Unpack(info)
        assert info.retry_delay.seconds >= 1

        status, headers, _ = post(f"{otelml.http_url}/v1/traces", make_trace_request(spans=5).SerializeToString())
        assert status == 503
        assert int(headers["Retry-After"]) >= 1
        samples = otelml.metrics()
    assert metric(samples, "otelcol_receiver_refused_spans_total") == 10
    assert metric(samples, "otelml_dropped_items_total", reason="retry_disabled") == 10
