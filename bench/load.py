"""The load: pre-built OTLP trace requests driven into a gRPC endpoint.

Requests are built and serialised once (see :mod:`otelml.synthetic`), so
the client spends its time sending, not building. For latency runs each
request carries one extra resource with a single marker span whose span ID
numbers the send; the sink (:mod:`bench.sink`) finds the marker in what the
collector exports and the difference of the two clocks is the latency.
Serialised protobuf messages concatenate into their merge, so adding the
marker costs one small serialisation per send.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml.otlp import GRPC_SERVICES
from otelml.pdata import Signal
from otelml.synthetic import make_trace_request

# The marker's scope name carries the send's sequence number in fixed width,
# so the sink finds it in the raw bytes without decoding the request.
MARKER_PREFIX = b"bench.marker."
MARKER_DIGITS = 12
EXPORT_METHOD = f"/{GRPC_SERVICES[Signal.TRACES]}/Export"


@dataclasses.dataclass
class Workload:
    requests: list[bytes]
    spans_per_request: int

    @classmethod
    def build(cls, count: int = 32, spans: int = 1000, services: int = 50, operations: int = 20) -> Workload:
        return cls(
            [
                make_trace_request(
                    spans, services, operations, seed=i, anomaly_rate=0.002, start_ns=time.time_ns() + i * spans * 1_000_000
                ).SerializeToString()
                for i in range(count)
            ],
            spans,
        )


def marker(sequence: int) -> bytes:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = f"{MARKER_PREFIX.decode()}{sequence:0{MARKER_DIGITS}d}"
    now = time.time_ns()
    scope_spans.spans.add(
        trace_id=sequence.to_bytes(16, "big"),
        span_id=sequence.to_bytes(8, "big"),
        name="bench.marker",
        start_time_unix_nano=now,
        end_time_unix_nano=now + 1000,
    )
    return request.SerializeToString()


@dataclasses.dataclass
class LoadResult:
    spans: int
    requests: int
    errors: int
    seconds: float
    send_times: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.seconds if self.seconds else 0.0


async def drive(endpoint: str, workload: Workload, seconds: float, streams: int = 4, rate: float | None = None) -> LoadResult:
    """Send for ``seconds``: as fast as acknowledged (``rate`` None) or at ``rate`` requests/s with markers."""
    async with grpc.aio.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        export = channel.unary_unary(EXPORT_METHOD, request_serializer=None, response_deserializer=None)
        result = LoadResult(0, 0, 0, 0.0)
        start = time.monotonic()
        deadline = start + seconds
        sequence = iter(range(1, 1 << 62))

        async def send(index: int) -> None:
            body = workload.requests[index % len(workload.requests)]
            number = 0
            if rate is not None:
                number = next(sequence)
                body += marker(number)
                result.send_times[number] = time.time_ns()
            try:
                await export(body, timeout=30)
            except grpc.aio.AioRpcError:
                result.errors += 1
                result.send_times.pop(number, None)
                return
            result.spans += workload.spans_per_request
            result.requests += 1

        async def closed_loop(worker: int) -> None:
            index = worker
            while time.monotonic() < deadline:
                await send(index)
                index += streams

        async def open_loop() -> None:
            in_flight: set[asyncio.Task] = set()
            interval, index = 1.0 / rate, 0
            while time.monotonic() < deadline:
                if len(in_flight) < 4 * streams:
                    task = asyncio.create_task(send(index))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                index += 1
                await asyncio.sleep(max(0.0, start + index * interval - time.monotonic()))
            await asyncio.gather(*in_flight)

        if rate is None:
            await asyncio.gather(*(closed_loop(w) for w in range(streams)))
        else:
            await open_loop()
        result.seconds = time.monotonic() - start
        return result
