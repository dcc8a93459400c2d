"""The ``otlphttp`` exporter: OTLP/HTTP POSTs, protobuf or JSON, gzip by default.

As the OTLP specification says, 429, 502, 503 and 504 are retried (after
Retry-After when the server sends it); every other non-2xx status is
permanent.
"""

from __future__ import annotations

import datetime
import email.utils
import gzip

import aiohttp
from google.protobuf import json_format

from otelml.component import CreateSettings, Host
from otelml.configauth import ClientAuthenticator, client_authenticator
from otelml.errors import PermanentError, RetryableError
from otelml.exporterhelper import PartialSuccess, QueuedRetryExporter
from otelml.exporters.otlphttp.config import OTLPHTTPExporterConfig
from otelml.otlp import RESPONSE_TYPES, rejected_items
from otelml.pdata import Batch, Signal, to_json

RETRYABLE_STATUSES = {429, 502, 503, 504}


class OTLPHTTPExporter(QueuedRetryExporter):
    config: OTLPHTTPExporterConfig

    def __init__(self, settings: CreateSettings, config: OTLPHTTPExporterConfig):
        super().__init__(settings, config)
        self.signals = frozenset(s for s in Signal if config.url(s.value))
        self._session: aiohttp.ClientSession | None = None
        content_type = "application/json" if config.encoding == "json" else "application/x-protobuf"
        self._headers = {**{k: v.get_secret_value() for k, v in config.headers.items()}, "Content-Type": content_type}
        if config.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        self._authenticator: ClientAuthenticator | None = None

    async def start_exporting(self, host: Host) -> None:
        self._authenticator = client_authenticator(host, self.config.auth)
        needs_tls = any((self.config.url(s.value) or "").startswith("https://") for s in Signal)
        connector = aiohttp.TCPConnector(ssl=self.config.tls.ssl_context() if needs_tls else False)
        self._session = aiohttp.ClientSession(connector=connector)

    async def stop_exporting(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def export(self, batch: Batch) -> PartialSuccess | None:
        signal = Signal.of(batch)
        url = self.config.url(signal.value)
        if url is None:
            raise PermanentError(f"no endpoint configured for {signal.value}")
        body = to_json(batch) if self.config.encoding == "json" else batch.SerializeToString()
        if self.config.compression == "gzip":
            body = gzip.compress(body, compresslevel=5)
        try:
            headers = self._headers if self._authenticator is None else {**self._headers, **self._authenticator.headers()}
            assert self._session is not None, "not started"
            async with self._session.post(
                url, data=body, headers=headers, server_hostname=self.config.tls.server_name_override
            ) as response:
                payload = await response.read()
                if response.status // 100 == 2:
                    return _partial_success(signal, payload, response.content_type)
                message = f"HTTP {response.status} from {url}: {payload[:300].decode(errors='replace')}"
                if response.status in RETRYABLE_STATUSES:
                    raise RetryableError(
                        message, retry_after=_retry_after(response.headers.get("Retry-After")), throttled=response.status == 429
                    )
                raise PermanentError(message)
        except aiohttp.ClientError as error:
            raise RetryableError(f"cannot reach {url}: {error}") from None


def _partial_success(signal: Signal, payload: bytes, content_type: str) -> PartialSuccess | None:
    """What a 2xx answer says the server refused, if anything."""
    if not payload:
        return None
    response = RESPONSE_TYPES[signal]()
    try:
        if content_type == "application/json":
            json_format.Parse(payload, response, ignore_unknown_fields=True)
        else:
            response.ParseFromString(payload)
    except Exception:
        return None  # a success answer we cannot read carries no rejection we could count
    return PartialSuccess(*rejected_items(signal, response))


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.datetime.now(datetime.UTC)).total_seconds(), 0.0)
