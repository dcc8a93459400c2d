"""Retry, permanent errors and the sending queue of the otlp and otlphttp exporters.

An in-process service (OTLP gRPC receiver -> exporter) forwards to a fake
destination started here, which answers from a script of failures and then
succeeds. Outcomes are checked by what the destination received and by the
service's own metrics; every wait is a condition, never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import pytest
from aiohttp import web
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from otelml.component import ComponentID
from otelml.service import Service
from tests.conftest import build_config

pytestmark = pytest.mark.integration

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
FAST_RETRY = {"initial_interval": "50ms", "max_interval": "100ms", "max_elapsed_time": "10s"}
# A server-given delay longer than FAST_RETRY's max_elapsed_time: honoured, it leaves no time for a retry.
BEYOND_MAX_ELAPSED = 60
NO_QUEUE = {"enabled": False}
FULL_SUCCESS = ExportTraceServiceResponse()


def spans(first: int, count: int) -> ExportTraceServiceRequest:
    """One request of ``count`` spans whose span IDs are ``first``, ``first + 1``, ..."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for number in range(first, first + count):
        scope.spans.add(trace_id=bytes(15) + b"\x01", span_id=number.to_bytes(8, "big"), name=f"span-{number}")
    return request


def span_numbers(requests: list[ExportTraceServiceRequest]) -> list[int]:
    return [
        int.from_bytes(span.span_id, "big")
        for request in requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


# Status details a broken server or proxy may send: not a google.rpc.Status.
CORRUPT_DETAILS = b"\xff\xfe not a status"


def status_details(code: grpc.StatusCode, retry_delay: float | bytes | None) -> tuple:
    """Trailing metadata carrying google.rpc.RetryInfo, as an OTLP server sends it (or ``retry_delay``'s bytes as they are)."""
    if retry_delay is None:
        return ()
    if isinstance(retry_delay, bytes):
        return (("grpc-status-details-bin", retry_delay),)
    status = status_pb2.Status(code=code.value[0], message="scripted")
    delay = duration_pb2.Duration(seconds=int(retry_delay), nanos=int(retry_delay % 1 * 1e9))
    status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return (("grpc-status-details-bin", status.SerializeToString()),)


class FakeGRPCDestination:
    """An OTLP/gRPC TraceService that fails from ``script`` (code, RetryInfo delay or None), then answers OK.

    ``gate``, when given, holds every call until it is set.
    """

    def __init__(
        self,
        script: list[tuple[grpc.StatusCode, float | bytes | None]] = (),
        gate: asyncio.Event | None = None,
        answer: ExportTraceServiceResponse = FULL_SUCCESS,
    ):
        self.script = list(script)
        self.gate = gate
        self.answer = answer
        self.calls = 0
        self.received: list[ExportTraceServiceRequest] = []
        self.time_remaining: list[float | None] = []  # the deadline each call came with, in seconds from its arrival
        self.endpoint = ""
        self._server: grpc.aio.Server | None = None

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> ExportTraceServiceResponse:
        self.calls += 1
        self.time_remaining.append(context.time_remaining())
        if self.gate is not None:
            await self.gate.wait()
        if self.script:
            code, retry_delay = self.script.pop(0)
            await context.abort(code, f"scripted {code.name}", trailing_metadata=status_details(code, retry_delay))
        self.received.append(ExportTraceServiceRequest.FromString(request))
        return self.answer

    async def __aenter__(self) -> FakeGRPCDestination:
        self._server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            self._export, response_serializer=ExportTraceServiceResponse.SerializeToString
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}),)
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.endpoint = f"127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        if self.gate is not None:
            self.gate.set()
        await self._server.stop(None)


class FakeHTTPDestination:
    """An OTLP/HTTP /v1/traces endpoint that fails from ``script`` (status, Retry-After or None), then answers 200."""

    def __init__(self, script: list[tuple[int, str | None]] = (), answer: ExportTraceServiceResponse = FULL_SUCCESS):
        self.script = list(script)
        self.answer = answer
        self.calls = 0
        self.received: list[ExportTraceServiceRequest] = []
        self.endpoint = ""
        self._runner: web.AppRunner | None = None

    async def _export(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()  # aiohttp undoes the exporter's gzip
        if self.script:
            status, retry_after = self.script.pop(0)
            return web.Response(status=status, text="scripted", headers={"Retry-After": retry_after} if retry_after else None)
        self.received.append(ExportTraceServiceRequest.FromString(body))
        return web.Response(body=self.answer.SerializeToString(), content_type="application/x-protobuf")

    async def __aenter__(self) -> FakeHTTPDestination:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.endpoint = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()


@contextlib.asynccontextmanager
async def forwarding_service(exporter_type: str, exporter: dict):
    """A running service: OTLP gRPC receiver on a free port -> ``exporter``; yields it and the receiver's address."""
    service = Service(
        build_config(
            {
                "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
                "exporters": {exporter_type: exporter},
                "service": {
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": [exporter_type]}},
                    "telemetry": {"metrics": {"readers": []}},
                },
            }
        )
    )
    await service.start()
    try:
        host, port = service.graph.receivers[ComponentID("otlp")].addresses["grpc"]
        yield service, f"{host}:{port}"
    finally:
        await service.shutdown()


def otlp_exporter(destination: FakeGRPCDestination, retry: dict = FAST_RETRY, queue: dict = NO_QUEUE, **extra) -> dict:
    return {
        "endpoint": destination.endpoint,
        "tls": {"insecure": True},
        "retry_on_failure": retry,
        "sending_queue": queue,
        **extra,
    }


async def send(address: str, request: ExportTraceServiceRequest) -> None:
    """Export through the receiver as an OTLP client would; raises grpc.aio.AioRpcError on refusal."""
    async with grpc.aio.insecure_channel(address) as channel:
        export = channel.unary_unary(
            TRACE_EXPORT,
            request_serializer=ExportTraceServiceRequest.SerializeToString,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        await export(request)


def sent(service: Service, exporter: str) -> float:
    return service.telemetry.value("otelcol_exporter_sent_spans_total", exporter=exporter)


def failed(service: Service, exporter: str) -> float:
    return service.telemetry.value("otelcol_exporter_send_failed_spans_total", exporter=exporter)


def dropped(service: Service, exporter: str, reason: str) -> float:
    return service.telemetry.value("otelml_dropped_items_total", component=exporter, otel_signal="traces", reason=reason)


# otlp (gRPC) exporter


async def test_unavailable_then_ok_delivers_every_span_exactly_once():
    script = [(grpc.StatusCode.UNAVAILABLE, 0.05), (grpc.StatusCode.UNAVAILABLE, None), (grpc.StatusCode.UNAVAILABLE, None)]
    async with FakeGRPCDestination(script) as destination:
        async with forwarding_service("otlp", otlp_exporter(destination, queue={"num_consumers": 4})) as (service, address):
            await asyncio.gather(*(send(address, spans(100 * n, 10)) for n in range(5)))
        # Shutdown drained the sending queue, so every outcome is final here.
        assert destination.calls == 5 + len(script)
        assert sorted(span_numbers(destination.received)) == [100 * n + i for n in range(5) for i in range(10)]
        assert sent(service, "otlp") == 50
        assert failed(service, "otlp") == 0


@pytest.mark.parametrize("timeout, deadline", [("3s", True), ("0s", False)])
async def test_the_attempt_timeout_travels_to_the_server_as_the_call_deadline(timeout, deadline):
    # As in the collector: the server can give up on a call its client no longer waits for.
    async with FakeGRPCDestination() as destination:
        async with forwarding_service("otlp", otlp_exporter(destination, timeout=timeout)) as (_, address):
            await send(address, spans(0, 1))
        [remaining] = destination.time_remaining
        # The server counts the deadline from its own clock: a few ms more than 3 s can remain.
        assert (0 < remaining < 4) if deadline else remaining is None, remaining


async def test_retry_info_makes_resource_exhausted_retryable():
    async with FakeGRPCDestination([(grpc.StatusCode.RESOURCE_EXHAUSTED, 0.05)]) as destination:
        async with forwarding_service("otlp", otlp_exporter(destination)) as (service, address):
            await send(address, spans(1, 3))
        assert destination.calls == 2
        assert span_numbers(destination.received) == [1, 2, 3]
        assert sent(service, "otlp") == 3


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED])
async def test_retry_info_delay_is_honoured(code):
    async with FakeGRPCDestination([(code, BEYOND_MAX_ELAPSED)]) as destination:
        async with forwarding_service("otlp", otlp_exporter(destination)) as (service, address):
            with pytest.raises(grpc.aio.AioRpcError):
                await send(address, spans(1, 3))
        assert destination.calls == 1
        assert dropped(service, "otlp", "retries_exhausted") == 3


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED])
async def test_permanent_error_is_not_retried_and_is_counted(code):
    async with FakeGRPCDestination([(code, None)]) as destination:
        async with forwarding_service("otlp", otlp_exporter(destination)) as (service, address):
            with pytest.raises(grpc.aio.AioRpcError) as refusal:
                await send(address, spans(1, 4))
        assert refusal.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert destination.calls == 1
        assert destination.received == []
        assert failed(service, "otlp") == 4
        assert dropped(service, "otlp", "permanent_error") == 4
        assert sent(service, "otlp") == 0


async def test_a_permanent_status_with_unreadable_details_is_still_permanent():
    # The details used to fail to parse inside the classification, and the error that raised was retried.
    async with FakeGRPCDestination([(grpc.StatusCode.INVALID_ARGUMENT, CORRUPT_DETAILS)] * 10) as destination:
        async with forwarding_service("otlp", otlp_exporter(destination)) as (service, address):
            with pytest.raises(grpc.aio.AioRpcError) as refusal:
                await send(address, spans(1, 4))
        assert refusal.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert destination.calls == 1
        assert dropped(service, "otlp", "permanent_error") == 4


async def test_max_elapsed_time_exhausted_drops_with_reason():
    retry = {"initial_interval": "50ms", "max_interval": "50ms", "max_elapsed_time": "300ms", "randomization_factor": 0}
    async with FakeGRPCDestination([(grpc.StatusCode.UNAVAILABLE, None)] * 100) as destination:
        async with forwarding_service("otlp", otlp_exporter(destination, retry=retry, queue={})) as (service, address):
            await send(address, spans(1, 2))  # queued: the client is answered before sending
        assert destination.calls > 1
        assert destination.received == []
        assert dropped(service, "otlp", "retries_exhausted") == 2
        assert failed(service, "otlp") == 2


async def test_full_queue_refuses_with_a_retryable_error_and_counts_enqueue_failed():
    gate = asyncio.Event()
    async with FakeGRPCDestination(gate=gate) as destination:
        queue = {"num_consumers": 1, "queue_size": 1}
        async with forwarding_service("otlp", otlp_exporter(destination, queue=queue, timeout="30s")) as (service, address):
            await send(address, spans(1, 1))
            while destination.calls == 0:  # the only worker now holds the first request
                await asyncio.sleep(0.01)
            await send(address, spans(2, 1))  # fills the queue
            with pytest.raises(grpc.aio.AioRpcError) as refusal:
                await send(address, spans(3, 5))
            gate.set()
        assert refusal.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert any(key == "grpc-status-details-bin" for key, _ in refusal.value.trailing_metadata())
        assert service.telemetry.value("otelcol_exporter_enqueue_failed_spans_total", exporter="otlp") == 5
        assert service.telemetry.value("otelcol_receiver_refused_spans_total", receiver="otlp", transport="grpc") == 5
        assert span_numbers(destination.received) == [1, 2]
        assert sent(service, "otlp") == 2


# otlphttp exporter


def otlphttp_exporter(destination: FakeHTTPDestination, retry: dict) -> dict:
    return {"endpoint": destination.endpoint, "retry_on_failure": retry, "sending_queue": NO_QUEUE}


async def test_otlphttp_503_with_retry_after_then_200_delivers_everything():
    async with FakeHTTPDestination([(503, "1"), (503, None)]) as destination:
        async with forwarding_service("otlphttp", otlphttp_exporter(destination, FAST_RETRY)) as (service, address):
            await send(address, spans(1, 6))
        assert destination.calls == 3
        assert span_numbers(destination.received) == [1, 2, 3, 4, 5, 6]
        assert sent(service, "otlphttp") == 6


async def test_otlphttp_retry_after_is_honoured():
    async with FakeHTTPDestination([(429, str(BEYOND_MAX_ELAPSED))]) as destination:
        async with forwarding_service("otlphttp", otlphttp_exporter(destination, FAST_RETRY)) as (service, address):
            with pytest.raises(grpc.aio.AioRpcError):
                await send(address, spans(1, 2))
        assert destination.calls == 1
        assert dropped(service, "otlphttp", "retries_exhausted") == 2


async def test_a_retry_after_of_zero_does_not_shorten_the_backoff():
    # Each wait is at least the 100ms interval, so 1s of retrying holds at most 10 waits. Taking the
    # server's 0 in place of the backoff made it a busy loop: 1468 requests in that second.
    retry = {"initial_interval": "100ms", "max_interval": "100ms", "max_elapsed_time": "1s", "randomization_factor": 0}
    async with FakeHTTPDestination([(503, "0")] * 10_000) as destination:
        async with forwarding_service("otlphttp", otlphttp_exporter(destination, retry)) as (service, address):
            with pytest.raises(grpc.aio.AioRpcError):
                await send(address, spans(1, 2))
        assert 1 < destination.calls <= 1 + 10
        assert dropped(service, "otlphttp", "retries_exhausted") == 2


async def test_otlphttp_400_is_permanent():
    async with FakeHTTPDestination([(400, None)]) as destination:
        async with forwarding_service("otlphttp", otlphttp_exporter(destination, FAST_RETRY)) as (service, address):
            with pytest.raises(grpc.aio.AioRpcError) as refusal:
                await send(address, spans(1, 3))
        assert refusal.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert destination.calls == 1
        assert failed(service, "otlphttp") == 3
        assert dropped(service, "otlphttp", "permanent_error") == 3


# partial success, over either transport


def partial_success(rejected: int, message: str) -> ExportTraceServiceResponse:
    answer = ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = rejected
    answer.partial_success.error_message = message
    return answer


@contextlib.asynccontextmanager
async def answering_service(exporter_type: str, answer: ExportTraceServiceResponse):
    """A forwarding service whose ``exporter_type`` destination takes every request with ``answer``."""
    if exporter_type == "otlp":
        async with FakeGRPCDestination(answer=answer) as destination:
            async with forwarding_service("otlp", otlp_exporter(destination)) as (service, address):
                yield service, address
    else:
        async with FakeHTTPDestination(answer=answer) as destination:
            async with forwarding_service("otlphttp", otlphttp_exporter(destination, FAST_RETRY)) as (service, address):
                yield service, address


def exporter_warnings(caplog, exporter: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == f"otelml.exporter.{exporter}" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
async def test_spans_rejected_in_a_partial_success_are_failed_not_sent_and_logged_once(exporter, caplog):
    async with answering_service(exporter, partial_success(2, "2 spans without a trace ID")) as (service, address):
        await send(address, spans(1, 5))
    # Counted as sent as well, they were 7 of 5 spans.
    assert sent(service, exporter) == 3
    assert failed(service, exporter) == 2
    assert dropped(service, exporter, "rejected_by_destination") == 2
    (line,) = exporter_warnings(caplog, exporter)
    assert "2 spans" in line and "2 spans without a trace ID" in line


@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
async def test_a_partial_success_that_rejects_nothing_is_logged_as_a_warning(exporter, caplog):
    async with answering_service(exporter, partial_success(0, "attribute limit reached, values truncated")) as (service, address):
        await send(address, spans(1, 5))
    assert sent(service, exporter) == 5
    assert failed(service, exporter) == 0
    (line,) = exporter_warnings(caplog, exporter)
    assert "attribute limit reached, values truncated" in line


async def test_a_server_claiming_more_rejections_than_spans_sent_fails_only_those_sent():
    async with answering_service("otlp", partial_success(50, "everything is wrong")) as (service, address):
        await send(address, spans(1, 5))
    assert sent(service, "otlp") == 0
    assert failed(service, "otlp") == 5
