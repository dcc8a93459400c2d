"""The ``otlp`` exporter: OTLP/gRPC to a collector, a gateway or a backend.

Status codes are handled as the OTLP specification says: CANCELLED,
DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are
retried; RESOURCE_EXHAUSTED only when the server sent RetryInfo; every
other code is permanent. A RetryInfo delay replaces the backoff interval.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from otelml.component import CreateSettings, Host
from otelml.configauth import ClientAuthenticator, client_authenticator
from otelml.errors import PermanentError, RetryableError
from otelml.exporterhelper import PartialSuccess, QueuedRetryExporter
from otelml.exporters.otlp.config import OTLPExporterConfig
from otelml.otlp import GRPC_SERVICES, RESPONSE_TYPES, rejected_items
from otelml.pdata import Batch, Signal

RETRYABLE = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


class OTLPExporter(QueuedRetryExporter):
    config: OTLPExporterConfig

    def __init__(self, settings: CreateSettings, config: OTLPExporterConfig):
        super().__init__(settings, config)
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[Signal, Any] = {}
        self._metadata = tuple((k.lower(), v.get_secret_value()) for k, v in config.headers.items())
        self._compression = grpc.Compression.Gzip if config.compression == "gzip" else grpc.Compression.NoCompression
        self._authenticator: ClientAuthenticator | None = None

    async def start_exporting(self, host: Host) -> None:
        self._authenticator = client_authenticator(host, self.config.auth)
        tls = self.config.tls
        credentials = tls.grpc_credentials()
        target = self.config.target()
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=tls.grpc_options())
        for signal in Signal:
            self._calls[signal] = self._channel.unary_unary(
                f"/{GRPC_SERVICES[signal]}/Export",
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=RESPONSE_TYPES[signal].FromString,
            )

    async def stop_exporting(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def export(self, batch: Batch) -> PartialSuccess:
        signal = Signal.of(batch)
        metadata = self._metadata
        if self._authenticator is not None:
            metadata += tuple(self._authenticator.headers().items())
        try:
            response = await self._calls[signal](
                batch,
                # The attempt's deadline travels with the call, so that the server can give up on it too.
                timeout=self.config.timeout or None,
                metadata=metadata,
                compression=self._compression,
                wait_for_ready=False,
            )
        except grpc.aio.AioRpcError as error:
            raise _classify(error) from None
        return PartialSuccess(*rejected_items(signal, response))


def _classify(error: grpc.aio.AioRpcError) -> Exception:
    code = error.code()
    message = f"{code.name}: {error.details()}"
    retry_after = _retry_delay(error)
    if code in RETRYABLE or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is not None):
        return RetryableError(message, retry_after=retry_after, throttled=code is grpc.StatusCode.RESOURCE_EXHAUSTED)
    return PermanentError(message)


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The delay in the google.rpc.RetryInfo detail of the status, if the server sent one."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            try:
                status = status_pb2.Status.FromString(value)
            except DecodeError:  # details that cannot be read must not hide the status code
                return None
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None
