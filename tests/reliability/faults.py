"""Tools to put otelml under load and faults, and to check that nothing acknowledged is lost.

Every span sent carries a unique number in its span ID. A
:class:`Client` remembers which numbers otelml acknowledged; a
:class:`Destination` (an OTLP/gRPC server that can be slow, go down and come
back on the same port) counts which numbers arrived, and how often. Shared
by the reliability tests and ``bench/soak``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time

import aiohttp
import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from otelml.exporters.otlp.exporter import _retry_delay
from otelml.otlp import GRPC_SERVICES
from otelml.pdata import Signal
from otelml.process import resident_bytes
from otelml.synthetic import make_trace_request

TRACE_EXPORT = f"/{GRPC_SERVICES[Signal.TRACES]}/Export"
rss_bytes = resident_bytes  # of another process, by its pid


def span_numbers(request: ExportTraceServiceRequest) -> list[int]:
    return [int.from_bytes(span.span_id, "big") for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


class Destination:
    """An OTLP/gRPC trace destination recording the span numbers it receives.

    ``delay`` seconds pass before each call is answered, to make the
    pipeline slow. :meth:`stop` closes the port (an outage); :meth:`start`
    opens the same port again.
    """

    def __init__(self, port: int = 0, delay: float = 0.0):
        self.port = port
        self.delay = delay
        self.received: collections.Counter[int] = collections.Counter()
        self.calls = 0
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self._server is not None

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.received.values())

    async def start(self) -> Destination:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=ExportTraceServiceRequest.FromString,
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(GRPC_SERVICES[Signal.TRACES], {"Export": handler}),)
        )
        port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        if port == 0:
            raise OSError(f"cannot listen on 127.0.0.1:{self.port}")
        self.port = port
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(None)

    async def _export(self, request: ExportTraceServiceRequest, context) -> ExportTraceServiceResponse:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.update(span_numbers(request))
        return ExportTraceServiceResponse()

    async def wait_for(self, numbers: set[int], timeout: float) -> set[int]:
        """Wait until every number in ``numbers`` arrived or ``timeout`` passed; returns those still missing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = {n for n in numbers if n not in self.received}
            if not missing:
                return missing
            await asyncio.sleep(0.2)
        return {n for n in numbers if n not in self.received}


@dataclasses.dataclass
class Outcome:
    accepted: bool
    # "RESOURCE_EXHAUSTED", "UNAVAILABLE", "http 429", ... for refusals.
    status: str = ""
    retry_after: float | None = None


RETRYABLE = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "http 429", "http 503"}


class Client:
    """Sends uniquely numbered spans to otelml over gRPC and HTTP and keeps score.

    ``acknowledged`` holds the numbers of every span otelml accepted;
    ``outcomes`` counts answers by status (``ok`` for acceptance).
    """

    def __init__(self, grpc_endpoint: str, http_url: str | None = None, spans_per_request: int = 200, first_number: int = 1):
        self.grpc_endpoint = grpc_endpoint
        self.http_url = http_url
        self.spans_per_request = spans_per_request
        self.next_number = first_number
        self.acknowledged: set[int] = set()
        self.sent = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.retry_delays: list[float | None] = []
        self._template = make_trace_request(spans=spans_per_request, services=5)
        self._spans = [span for rs in self._template.resource_spans for ss in rs.scope_spans for span in ss.spans]
        self._channel: grpc.aio.Channel | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._channel = grpc.aio.insecure_channel(self.grpc_endpoint)
        self._export = self._channel.unary_unary(
            TRACE_EXPORT, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._channel.close()
        await self._http.close()

    def _next_request(self) -> tuple[bytes, range]:
        numbers = range(self.next_number, self.next_number + self.spans_per_request)
        self.next_number += self.spans_per_request
        for span, number in zip(self._spans, numbers):
            span.span_id = number.to_bytes(8, "big")
        return self._template.SerializeToString(), numbers

    async def send(self, transport: str = "grpc", timeout: float = 10.0) -> Outcome:
        """Send one request of new spans; remember them when acknowledged."""
        body, numbers = self._next_request()
        self.sent += len(numbers)
        outcome = await (self._send_grpc(body, timeout) if transport == "grpc" else self._send_http(body, timeout))
        self.outcomes["ok" if outcome.accepted else outcome.status] += 1
        if outcome.accepted:
            self.acknowledged.update(numbers)
        else:
            self.retry_delays.append(outcome.retry_after)
        return outcome

    async def _send_grpc(self, body: bytes, timeout: float) -> Outcome:
        try:
            await self._export(body, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return Outcome(False, error.code().name, _retry_delay(error))
        return Outcome(True)

    async def _send_http(self, body: bytes, timeout: float) -> Outcome:
        try:
            async with self._http.post(
                f"{self.http_url}/v1/traces",
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
                headers={"Content-Type": "application/x-protobuf"},
            ) as response:
                await response.read()
                if response.status == 200:
                    return Outcome(True)
                retry_after = response.headers.get("Retry-After")
                return Outcome(False, f"http {response.status}", float(retry_after) if retry_after else None)
        except (TimeoutError, aiohttp.ClientError) as error:
            return Outcome(False, f"http {type(error).__name__}")

    async def drive(
        self, requests_per_second: float, seconds: float, transports: tuple[str, ...] = ("grpc",), concurrency: int = 64
    ) -> None:
        """Send at a steady rate for ``seconds`` (at most ``concurrency`` requests in flight)."""
        slots = asyncio.Semaphore(concurrency)
        tasks: set[asyncio.Task] = set()
        start = time.monotonic()
        count = 0
        while time.monotonic() - start < seconds:
            await slots.acquire()
            task = asyncio.create_task(self.send(transports[count % len(transports)]))
            task.add_done_callback(lambda _: slots.release())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            count += 1
            await asyncio.sleep(max(0.0, start + count / requests_per_second - time.monotonic()))
        await asyncio.gather(*tasks)
