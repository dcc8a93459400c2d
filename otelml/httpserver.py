"""One way for a component to serve HTTP on its configured endpoint (scrape endpoints, debug pages)."""

from __future__ import annotations

import logging

from aiohttp import web

from otelml.configmodel import parse_endpoint
from otelml.listen import cannot_listen
from otelml.tlsconfig import ServerTLSConfig


class HTTPServer:
    """An aiohttp application on ``host:port``, with TLS when configured.

    ``address`` is where it listens once started (port 0 picks a free one).
    Stopping is safe before starting and more than once.
    """

    def __init__(
        self, app: web.Application, endpoint: str, tls: ServerTLSConfig | None, logger: logging.Logger | logging.LoggerAdapter
    ):
        self.app = app
        self.endpoint = endpoint
        self.tls = tls
        self.logger = logger
        self.address: tuple[str, int] | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> tuple[str, int]:
        """Listen; raises :func:`otelml.listen.cannot_listen` (one line naming the endpoint) when it cannot."""
        host, port = parse_endpoint(self.endpoint)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        ssl_context = self.tls.ssl_context(self.logger) if self.tls else None
        try:
            await web.TCPSite(self._runner, host, port, ssl_context=ssl_context).start()
        except OSError as error:
            await self.stop()
            raise cannot_listen(self.endpoint, error) from None
        self.address = self._runner.addresses[0][:2]
        return self.address

    @property
    def url(self) -> str:
        """``http(s)://host:port`` once started."""
        assert self.address is not None, "not started"
        host, port = self.address
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
