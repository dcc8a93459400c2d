"""The ``otlp`` receiver: OTLP over gRPC and HTTP into the pipelines."""

from __future__ import annotations

import dataclasses

from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.errors import PermanentError
from otelml.otlp import partial_success_response
from otelml.pdata import Batch, Signal, count_items
from otelml.receivers.otlp.config import OTLPReceiverConfig


@dataclasses.dataclass
class Rejection:
    """Items of an accepted request that were refused (OTLP partial success)."""

    count: int = 0
    message: str = ""

    def response(self, signal: Signal):
        return partial_success_response(signal, self.count, self.message)


class OTLPReceiver(Component):
    def __init__(self, settings: CreateSettings, config: OTLPReceiverConfig, consumers: dict[Signal, Consumer]):
        self.settings = settings
        self.config = config
        self.consumers = consumers
        self.logger = settings.logger
        self.id = str(settings.id)
        self._servers = []

    async def start(self, host: Host) -> None:
        # Imported here so that each transport's libraries load only when enabled.
        if self.config.protocols.grpc is not None:
            from otelml.receivers.otlp.grpc_server import GRPCServer
            self._servers.append(GRPCServer(self, self.config.protocols.grpc))
        if self.config.protocols.http is not None:
            from otelml.receivers.otlp.http_server import HTTPServer
            self._servers.append(HTTPServer(self, self.config.protocols.http))
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

    async def deliver(self, signal: Signal, batch: Batch, transport: str) -> Rejection:
        """Push one decoded request into the pipelines; errors propagate to the caller."""
        rejection = drop_invalid_ids(batch, signal)
        if rejection.count:
            self.settings.telemetry.receiver_refused(self.id, transport, signal, rejection.count)
            self.logger.warning("refused %d %s of a %s request: %s", rejection.count, signal.item_name, transport, rejection.message)
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

    def bad_request(self, transport: str, reason: str, detail: str) -> None:
        """Count and log a request refused before any item reached the pipeline."""
        self.settings.telemetry.receiver_bad_request(self.id, transport, reason)
        self.logger.warning("refused a %s request (%s): %s", transport, reason, detail)


def drop_invalid_ids(batch: Batch, signal: Signal) -> Rejection:
    """Remove records whose trace or span ID has the wrong length.

    OTLP requires 16-byte trace IDs and 8-byte span IDs (empty is allowed
    for logs). Such records cannot be stored or correlated, so they are
    refused through partial success while the rest of the request goes on.
    """
    if signal is Signal.METRICS:
        return Rejection()
    rejected = 0
    for resource in getattr(batch, signal.resource_field):
        for scope in (resource.scope_spans if signal is Signal.TRACES else resource.scope_logs):
            records = scope.spans if signal is Signal.TRACES else scope.log_records
            valid_ids = _valid_span_ids if signal is Signal.TRACES else _valid_log_ids
            if all(valid_ids(r) for r in records):
                continue
            keep = [r for r in records if valid_ids(r)]
            rejected += len(records) - len(keep)
            del records[:]
            records.extend(keep)
    if not rejected:
        return Rejection()
    return Rejection(rejected, f"{rejected} {signal.item_name} had a trace ID that is not 16 bytes or a span ID that is not 8 bytes")


def _valid_span_ids(span) -> bool:
    return len(span.trace_id) == 16 and len(span.span_id) == 8


def _valid_log_ids(record) -> bool:
    return len(record.trace_id) in (0, 16) and len(record.span_id) in (0, 8)
