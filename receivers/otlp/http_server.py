"""OTLP/HTTP: POST /v1/traces, /v1/logs and /v1/metrics, protobuf or JSON, optionally compressed.

Errors follow the OTLP specification: 400 (not retryable) for a body that
cannot be decoded, 413 above ``max_request_body_size`` (compressed or not),
415 for other content types, 429/503 with Retry-After when the pipeline
asks the client to retry, 503 with Retry-After beyond
``max_concurrent_requests`` requests in flight. Error bodies are google.rpc.Status in the
request's encoding.
"""

from __future__ import annotations

import math
import zlib

import zstandard
from aiohttp import web
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from otelml.configauth import ServerAuthenticator
from otelml.listen import cannot_listen
from otelml.pdata import Signal
from otelml.receivers.otlp.config import HTTPSettings
from otelml.receivers.otlp.receiver import InFlight, Refusal
from otelml.utf8 import parse_json, parse_proto

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class BodyTooLarge(Exception):
    pass


class HTTPServer:
    transport = "http"

    def __init__(self, receiver, settings: HTTPSettings, authenticator: ServerAuthenticator | None = None):
        self.receiver = receiver
        self.settings = settings
        self.authenticator = authenticator
        self.address: tuple[str, int] | None = None
        self._runner: web.AppRunner | None = None
        self._in_flight = InFlight(receiver, "http", settings.max_concurrent_requests)

    async def start(self) -> None:
        limit = [self._limit_concurrency] if self.settings.max_concurrent_requests else []
        app = web.Application(client_max_size=self.settings.max_request_body_size, middlewares=limit)
        paths = {
            Signal.TRACES: self.settings.traces_url_path,
            Signal.LOGS: self.settings.logs_url_path,
            Signal.METRICS: self.settings.metrics_url_path,
        }
        for signal, path in paths.items():
            if signal in self.receiver.consumers:
                app.router.add_post(path, self._handler(signal))
                app.router.add_route("*", path, self._method_not_allowed)
        # Bodies are decompressed here, with a limit, not by aiohttp (gzip bombs).
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        host, _, port = self.settings.endpoint.rpartition(":")
        tls = self.settings.tls
        ssl_context = tls.ssl_context(self.receiver.logger) if tls else None
        site = web.TCPSite(self._runner, host.strip("[]") or None, int(port), ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as error:
            raise cannot_listen(self.settings.endpoint, error) from None
        self.address = self._runner.addresses[0][:2]
        self.receiver.logger.info("starting HTTP%s server on %s:%d", "S" if tls else "", *self.address)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _limit_concurrency(self, request: web.Request, handler) -> web.StreamResponse:
        refused = self._in_flight.enter()
        if refused is not None:
            return _refused(refused, media_type(request))
        try:
            return await handler(request)
        finally:
            self._in_flight.leave()

    async def _method_not_allowed(self, request: web.Request) -> web.Response:
        # Answered here rather than by aiohttp's router, which would leave it uncounted and unlogged.
        self.receiver.bad_request("http", "method_not_allowed", f"{request.method} {request.path}")
        return web.Response(status=405, headers={"Allow": "POST"}, text="405 method not allowed, supported: [POST]")

    def _handler(self, signal: Signal):
        async def export(request: web.Request) -> web.Response:
            content_type = media_type(request)
            if self.authenticator is not None and not self.authenticator.authenticate(request.headers):
                self.receiver.unauthenticated("http", request.remote or "an unknown address")
                return _status(401, code_pb2.UNAUTHENTICATED, "missing or invalid credentials", content_type)
            if content_type not in (PROTOBUF, JSON):
                sent = request.headers.get("Content-Type")
                self.receiver.bad_request("http", "unsupported_media_type", f"Content-Type {sent!r}")
                return web.Response(status=415, text=f"unsupported Content-Type {sent!r}; use {PROTOBUF} or {JSON}")
            # Asked before the body is read, and again with its size before it is decoded.
            refused = self.receiver.refusal_before_decoding(signal, "http")
            if refused is not None:
                return _refused(refused, content_type)
            try:
                body = _decompress(
                    await request.read(), request.headers.get("Content-Encoding", ""), self.settings.max_request_body_size
                )
            except (web.HTTPRequestEntityTooLarge, BodyTooLarge) as error:
                self.receiver.bad_request("http", "too_large", str(error.text if hasattr(error, "text") else error))
                return _status(
                    413,
                    code_pb2.RESOURCE_EXHAUSTED,
                    f"request body exceeds max_request_body_size of {self.settings.max_request_body_size} bytes",
                    content_type,
                )
            except ValueError as error:
                self.receiver.bad_request("http", "bad_encoding", str(error))
                return _status(400, code_pb2.INVALID_ARGUMENT, str(error), content_type)
            refused = self.receiver.refusal_before_decoding(signal, "http", len(body))
            if refused is not None:
                return _refused(refused, content_type)
            try:
                batch, repaired = (parse_proto if content_type == PROTOBUF else parse_json)(body, signal)
            except ValueError as error:
                self.receiver.bad_request("http", "malformed", str(error))
                return _status(400, code_pb2.INVALID_ARGUMENT, str(error), content_type)
            try:
                rejection = await self.receiver.deliver(signal, batch, "http", repaired)
            except Exception as error:
                return _refused(Refusal.of(error), content_type)
            return _encode(rejection.response(signal), content_type)

        return export


def media_type(request: web.Request) -> str:
    """The media type of the request's Content-Type, lower case, parameters left out.

    Read here rather than with aiohttp's ``content_type``, whose parser (the
    standard library's e-mail header parser) raises on some malformed headers.

    >>> from aiohttp.test_utils import make_mocked_request
    >>> media_type(make_mocked_request("POST", "/", headers={"Content-Type": " Application/JSON; charset=utf-8"}))
    'application/json'
    >>> media_type(make_mocked_request("POST", "/", headers={"Content-Type": ";0*"}))
    ''
    """
    return request.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo Content-Encoding without ever holding more than ``limit`` bytes of output.

    The body must be whole: a stream cut short, or bytes after its end, is refused rather than read in
    part. Concatenated gzip members and zstd frames are all read, as the collector's (Go's) readers do.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "deflate"):
        return _inflate(body, encoding, limit)
    if encoding == "zstd":
        return _unzstd(body, limit)
    raise ValueError(f"unsupported Content-Encoding {encoding!r} (supported: gzip, deflate, zstd)")


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    output = bytearray()
    rest = body
    while True:  # one gzip member after another
        # wbits 47 reads gzip or zlib headers alike.
        decompressor = zlib.decompressobj(47 if encoding == "gzip" else 15)
        try:
            output += decompressor.decompress(rest, limit + 1 - len(output))
        except zlib.error as error:
            raise ValueError(f"invalid {encoding} body: {error}") from None
        if len(output) > limit or decompressor.unconsumed_tail:
            raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
        if not decompressor.eof:
            raise ValueError(f"invalid {encoding} body: it ends before its compressed stream does")
        rest = decompressor.unused_data
        if not rest:
            return bytes(output)
        if encoding == "deflate":
            raise ValueError("invalid deflate body: data after the end of its compressed stream")


def _unzstd(body: bytes, limit: int) -> bytes:
    decompressor = zstandard.ZstdDecompressor()
    try:
        with decompressor.stream_reader(body, read_across_frames=True) as reader:
            data = reader.read(limit + 1)
        if len(data) > limit:
            raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
        # The reader stops quietly where a frame is cut short, so each frame is checked to end, one by
        # one; this second pass holds no more than the first, which found the whole output within limit.
        rest = body
        while True:
            frame = decompressor.decompressobj()
            frame.decompress(rest)
            if not frame.eof:
                raise ValueError("invalid zstd body: it ends before its last frame does")
            rest = frame.unused_data
            if not rest:
                return data
    except zstandard.ZstdError as error:
        raise ValueError(f"invalid zstd body: {error}") from None


def _encode(message, content_type: str, status: int = 200, headers: dict | None = None) -> web.Response:
    """``message`` as JSON for a JSON request, else as protobuf (whatever the request claimed to be)."""
    if content_type == JSON:
        return web.Response(
            status=status, body=json_format.MessageToJson(message, indent=None).encode(), content_type=JSON, headers=headers
        )
    return web.Response(status=status, body=message.SerializeToString(), content_type=PROTOBUF, headers=headers)


def _refused(refusal: Refusal, content_type: str) -> web.Response:
    return _status(refusal.http_status, refusal.code, refusal.message, content_type, refusal.retry_delay)


def _status(http_status: int, code: int, message: str, content_type: str, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
    return _encode(status_pb2.Status(code=code, message=message), content_type, http_status, headers)
