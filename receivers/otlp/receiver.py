"""The ``otlp`` receiver: OTLP over gRPC and HTTP into the pipelines."""

from __future__ import annotations

import dataclasses
from typing import Any

from google.rpc import code_pb2

from otelml.component import Component, CreateSettings, Host
from otelml.configauth import server_authenticator
from otelml.consumer import Consumer, refusal
from otelml.errors import PermanentError, RetryableError
from otelml.otlp import partial_success_response
from otelml.pdata import Batch, Signal, count_items, scopes
from otelml.receivers.otlp.config import OTLPReceiverConfig


@dataclasses.dataclass
class Rejection:
    """Items of an accepted request that were refused (OTLP partial success)."""

    count: int = 0
    message: str = ""

    def response(self, signal: Signal):
        return partial_success_response(signal, self.count, self.message)


# Seconds a client is asked to wait before retrying when the pipeline names no delay.
DEFAULT_RETRY_DELAY = 1.0


@dataclasses.dataclass(frozen=True)
class Refusal:
    """How both transports answer a pipeline's refusal, as the OTLP specification says."""

    code: int  # google.rpc.Code, for gRPC and for the HTTP error body
    http_status: int
    message: str
    retry_delay: float | None  # None: not retryable

    @classmethod
    def of(cls, error: Exception) -> Refusal:
        if isinstance(error, PermanentError):
            return cls(code_pb2.INVALID_ARGUMENT, 400, str(error), None)
        delay = DEFAULT_RETRY_DELAY
        if isinstance(error, RetryableError):
            delay = error.retry_after or DEFAULT_RETRY_DELAY
            if error.throttled:
                return cls(code_pb2.RESOURCE_EXHAUSTED, 429, str(error), delay)
        return cls(code_pb2.UNAVAILABLE, 503, str(error), delay)


class InFlight:
    """Requests one server is handling, at most ``limit`` (0: no limit).

    A request beyond the limit is refused before it is read (``UNAVAILABLE``
    / 503, retryable), so that many slow requests cannot fill memory.
    """

    def __init__(self, receiver: OTLPReceiver, transport: str, limit: int):
        self.receiver = receiver
        self.transport = transport
        self.limit = limit
        self.count = 0

    def enter(self) -> Refusal | None:
        """Count one more request, or the refusal to answer it with (counted, logged)."""
        if self.limit and self.count >= self.limit:
            self.receiver.bad_request(self.transport, "too_many_requests", f"{self.count} requests are in flight already")
            return Refusal(code_pb2.UNAVAILABLE, 503, "too many concurrent requests", DEFAULT_RETRY_DELAY)
        self.count += 1
        return None

    def leave(self) -> None:
        self.count -= 1


class OTLPReceiver(Component):
    def __init__(self, settings: CreateSettings, config: OTLPReceiverConfig, consumers: dict[Signal, Consumer]):
        self.settings = settings
        self.config = config
        self.consumers = consumers
        self.logger = settings.logger
        self.id = str(settings.id)
        self._servers: list[Any] = []

    async def start(self, host: Host) -> None:
        # Imported here so that each transport's libraries load only when enabled.
        grpc_settings, http_settings = self.config.protocols.grpc, self.config.protocols.http
        if grpc_settings is not None:
            from otelml.receivers.otlp.grpc_server import GRPCServer

            self._servers.append(GRPCServer(self, grpc_settings, server_authenticator(host, grpc_settings.auth)))
        if http_settings is not None:
            from otelml.receivers.otlp.http_server import HTTPServer

            self._servers.append(HTTPServer(self, http_settings, server_authenticator(host, http_settings.auth)))
        for server in self._servers:
            await server.start()

    async def shutdown(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            await server.stop()

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        """Bound (host, port) per transport, once started (ports may have been 0)."""
        return {server.transport: server.address for server in self._servers}

    async def deliver(self, signal: Signal, batch: Batch, transport: str, repaired: int = 0) -> Rejection:
        """Push one decoded request into the pipelines; errors propagate to the caller.

        ``repaired`` items of it had invalid UTF-8 replaced by U+FFFD while decoding.
        """
        if repaired:
            self.settings.telemetry.receiver_repaired(self.id, transport, signal, repaired)
            self.logger.warning(
                "replaced invalid UTF-8 with U+FFFD in %d %s of a %s request", repaired, signal.item_name, transport
            )
        rejection = drop_invalid_ids(batch, signal)
        if rejection.count:
            self.settings.telemetry.receiver_refused(self.id, transport, signal, rejection.count)
            self.logger.warning(
                "refused %d %s of a %s request: %s", rejection.count, signal.item_name, transport, rejection.message
            )
        items = count_items(batch)
        if not items:
            return rejection
        try:
            await self.consumers[signal].consume(batch)
        except PermanentError as error:
            self.settings.telemetry.receiver_refused(self.id, transport, signal, items)
            self.logger.warning("pipeline refused %d %s for good: %s", items, signal.item_name, error)
            raise
        except Exception as error:
            self.settings.telemetry.receiver_refused(self.id, transport, signal, items)
            self.logger.warning("pipeline refused %d %s, client may retry: %s", items, signal.item_name, error)
            raise
        self.settings.telemetry.receiver_accepted(self.id, transport, signal, items)
        return rejection

    def refusal_before_decoding(self, signal: Signal, transport: str, size: int = 0) -> Refusal | None:
        """How to answer a request of ``size`` encoded bytes (0: not read yet) that the pipelines would refuse
        now (memory limit), before it is decoded; counted as a failed request (``throttled``), not logged:
        the limiter logs its crossings."""
        error = refusal(self.consumers[signal], size)
        if error is None:
            return None
        self.settings.telemetry.receiver_bad_request(self.id, transport, "throttled" if error.throttled else "unavailable")
        return Refusal.of(error)

    def bad_request(self, transport: str, reason: str, detail: str) -> None:
        """Count and log a request refused before any item reached the pipeline."""
        self.settings.telemetry.receiver_bad_request(self.id, transport, reason)
        self.logger.warning("refused a %s request (%s): %s", transport, reason, detail)

    def unauthenticated(self, transport: str, peer: str) -> None:
        """Count and log a request refused for missing or wrong credentials."""
        self.bad_request(transport, "unauthenticated", f"missing or invalid credentials from {peer}")


def drop_invalid_ids(batch: Batch, signal: Signal) -> Rejection:
    """Remove records whose trace or span ID has the wrong length.

    OTLP requires 16-byte trace IDs and 8-byte span IDs (empty is allowed
    for logs, and for a root span's parent). Such records cannot be stored
    or correlated, and a collector downstream refuses a whole request that
    holds one (its decoder fails), so they are refused through partial
    success while the rest of the request goes on. A span's parent and its
    links are checked too.
    """
    if signal is Signal.METRICS:
        return Rejection()
    rejected = 0
    for _, _, records in scopes(batch):
        # Inline checks: this runs on every record of every request.
        if signal is Signal.TRACES:
            # Links are rare: a scope with some takes the slower path below.
            if all(
                len(r.trace_id) == 16 and len(r.span_id) == 8 and len(r.parent_span_id) in (0, 8) and not r.links for r in records
            ):
                continue
            keep = [
                r
                for r in records
                if len(r.trace_id) == 16 and len(r.span_id) == 8 and len(r.parent_span_id) in (0, 8) and _valid_links(r)
            ]
        else:
            if all(len(r.trace_id) in (0, 16) and len(r.span_id) in (0, 8) for r in records):
                continue
            keep = [r for r in records if len(r.trace_id) in (0, 16) and len(r.span_id) in (0, 8)]
        rejected += len(records) - len(keep)
        del records[:]
        records.extend(keep)
    if not rejected:
        return Rejection()
    return Rejection(
        rejected, f"{rejected} {signal.item_name} had a trace ID that is not 16 bytes or a span ID that is not 8 bytes"
    )


def _valid_links(span) -> bool:
    return all(len(link.trace_id) == 16 and len(link.span_id) == 8 for link in span.links)
