"""OTLP/gRPC: the Export methods of TraceService, LogsService and MetricsService.

Requests arrive as raw bytes and are decoded here, so that malformed and
oversized messages are answered (INVALID_ARGUMENT / RESOURCE_EXHAUSTED),
counted and logged by the receiver instead of failing inside gRPC.
"""

from __future__ import annotations

import errno

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from otelml.configauth import ServerAuthenticator
from otelml.listen import cannot_listen, check_can_listen
from otelml.otlp import GRPC_SERVICES
from otelml.pdata import Signal
from otelml.receivers.otlp.config import MIB, GRPCSettings
from otelml.receivers.otlp.receiver import InFlight, Refusal
from otelml.utf8 import parse_proto


class GRPCServer:
    transport = "grpc"

    def __init__(self, receiver, settings: GRPCSettings, authenticator: ServerAuthenticator | None = None):
        self.receiver = receiver
        self.settings = settings
        self.authenticator = authenticator
        self.limit = settings.max_recv_msg_size_mib * MIB
        self.address: tuple[str, int] | None = None
        self._server: grpc.aio.Server | None = None
        self._in_flight = InFlight(receiver, "grpc", settings.max_concurrent_requests)

    async def start(self) -> None:
        options = [
            # gRPC itself refuses (uncounted) only what is far beyond our own
            # limit; between the two, the handler refuses and counts it.
            ("grpc.max_receive_message_length", 2 * self.limit + MIB),
            # Without it, a second otelml on the same port would start and silently take half the connections.
            ("grpc.so_reuseport", 0),
        ]
        if self.settings.max_concurrent_streams:
            options.append(("grpc.max_concurrent_streams", self.settings.max_concurrent_streams))
        self._server = grpc.aio.server(options=options)
        for signal, service in GRPC_SERVICES.items():
            if signal in self.receiver.consumers:
                # Served as a stream (the same on the wire as a unary call) so that the handler runs before the
                # request is read: a refused request is never copied out of gRPC, let alone decoded.
                handler = grpc.stream_unary_rpc_method_handler(
                    self._handler(signal), response_serializer=lambda message: message.SerializeToString()
                )
                self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
        host, _, _ = self.settings.endpoint.rpartition(":")
        check_can_listen(self.settings.endpoint)
        try:
            if self.settings.tls is None:
                port = self._server.add_insecure_port(self.settings.endpoint)
            else:
                port = self._server.add_secure_port(
                    self.settings.endpoint, self.settings.tls.grpc_credentials(self.receiver.logger)
                )
        except RuntimeError:  # taken between the check and now
            port = 0
        if port == 0:
            raise cannot_listen(self.settings.endpoint, OSError(errno.EADDRINUSE, "address already in use"))
        self.address = (host, port)
        await self._server.start()
        self.receiver.logger.info("starting gRPC server on %s:%d%s", host, port, " with TLS" if self.settings.tls else "")

    async def stop(self) -> None:
        if self._server is not None:
            # Let requests in flight finish; they are already in the pipeline.
            await self._server.stop(grace=5)
            self._server = None

    def _handler(self, signal: Signal):
        async def export(_requests, context: grpc.aio.ServicerContext):
            refused = self._in_flight.enter()
            if refused is not None:
                await _abort_refused(context, refused)
            try:
                return await handle(context)
            finally:
                self._in_flight.leave()

        async def handle(context: grpc.aio.ServicerContext):
            if self.authenticator is not None and not self.authenticator.authenticate(dict(context.invocation_metadata() or ())):
                self.receiver.unauthenticated("grpc", context.peer())
                await _abort(context, code_pb2.UNAUTHENTICATED, "missing or invalid credentials")
            # Asked before the request is read, and again with its size before it is decoded.
            refused = self.receiver.refusal_before_decoding(signal, "grpc")
            if refused is not None:
                await _abort_refused(context, refused)
            request = await context.read()
            if request is grpc.aio.EOF:
                self.receiver.bad_request("grpc", "malformed", "the call carried no request")
                await _abort(context, code_pb2.INVALID_ARGUMENT, "an Export call carries one request")
            # A unary client half-closes with its request: a second one would be answered OK and never read.
            if await context.read() is not grpc.aio.EOF:
                self.receiver.bad_request("grpc", "malformed", "the call carried more than one request")
                await _abort(context, code_pb2.INVALID_ARGUMENT, "an Export call carries one request")
            if len(request) > self.limit:
                self.receiver.bad_request("grpc", "too_large", f"{len(request)} bytes > max_recv_msg_size_mib")
                await _abort(
                    context,
                    code_pb2.RESOURCE_EXHAUSTED,
                    f"request of {len(request)} bytes exceeds the limit of {self.limit} bytes",
                )
            refused = self.receiver.refusal_before_decoding(signal, "grpc", len(request))
            if refused is not None:
                await _abort_refused(context, refused)
            try:
                batch, repaired = parse_proto(request, signal)
            except ValueError as error:
                self.receiver.bad_request("grpc", "malformed", str(error))
                await _abort(context, code_pb2.INVALID_ARGUMENT, str(error))
            try:
                rejection = await self.receiver.deliver(signal, batch, "grpc", repaired)
            except Exception as error:
                await _abort_refused(context, Refusal.of(error))
            return rejection.response(signal)

        return export


async def _abort_refused(context: grpc.aio.ServicerContext, refusal: Refusal):
    await _abort(context, refusal.code, refusal.message, refusal.retry_delay)


async def _abort(context: grpc.aio.ServicerContext, code: int, message: str, retry_delay: float | None = None):
    """End the call with ``code``; a retry delay travels as google.rpc.RetryInfo, as OTLP asks."""
    status = status_pb2.Status(code=code, message=message)
    if retry_delay is not None:
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(retry_delay), nanos=int(retry_delay % 1 * 1e9))
        )
        status.details.add().Pack(info)
    grpc_code = next(c for c in grpc.StatusCode if c.value[0] == code)
    await context.abort(grpc_code, message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),))
