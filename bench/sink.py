"""An OTLP gRPC sink that notes when each marker span (see :mod:`bench.load`) is exported to it."""

from __future__ import annotations

import time

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from bench.load import MARKER_SCOPE
from otelml.otlp import GRPC_SERVICES
from otelml.pdata import Signal


class Sink:
    def __init__(self):
        self.arrivals: dict[int, int] = {}
        self.spans = 0
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> "Sink":
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", 256 << 20)])
        handler = grpc.unary_unary_rpc_method_handler(self._export, request_deserializer=ExportTraceServiceRequest.FromString,
                                                      response_serializer=ExportTraceServiceResponse.SerializeToString)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(GRPC_SERVICES[Signal.TRACES], {"Export": handler}),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1)

    async def _export(self, request: ExportTraceServiceRequest, context) -> ExportTraceServiceResponse:
        now = time.time_ns()
        for resource_spans in request.resource_spans:
            scope = resource_spans.scope_spans[0] if resource_spans.scope_spans else None
            if scope is not None and scope.scope.name == MARKER_SCOPE:
                self.arrivals[int.from_bytes(scope.spans[0].span_id, "big")] = now
            else:
                self.spans += sum(len(s.spans) for s in resource_spans.scope_spans)
        return ExportTraceServiceResponse()
