"""An OTLP gRPC sink that notes when each marker span (see :mod:`bench.load`) is exported to it.

It searches the raw request for marker scope names instead of decoding it,
so that the sink stays far cheaper than the collector it measures.
"""

from __future__ import annotations

import time

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench.load import MARKER_DIGITS, MARKER_PREFIX
from otelml.otlp import GRPC_SERVICES
from otelml.pdata import Signal


class Sink:
    def __init__(self):
        self.arrivals: dict[int, int] = {}
        self.requests = 0
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> Sink:
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", 256 << 20)])
        handler = grpc.unary_unary_rpc_method_handler(
            self._export, request_deserializer=None, response_serializer=ExportTraceServiceResponse.SerializeToString
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(GRPC_SERVICES[Signal.TRACES], {"Export": handler}),)
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1)

    async def _export(self, request: bytes, context) -> ExportTraceServiceResponse:
        now = time.time_ns()
        self.requests += 1
        position = request.find(MARKER_PREFIX)
        while position >= 0:
            start = position + len(MARKER_PREFIX)
            self.arrivals[int(request[start : start + MARKER_DIGITS])] = now
            position = request.find(MARKER_PREFIX, start)
        return ExportTraceServiceResponse()
