"""The ``health_check`` extension: HTTP 200 while every pipeline runs, 503 otherwise.

The body is JSON as the collector's: ``{"status": "Server available", ...}``.
"""

from __future__ import annotations

import datetime

from aiohttp import web

from otelml.component import Component, CreateSettings, Host
from otelml.extensions.health_check.config import HealthCheckConfig
from otelml.httpserver import HTTPServer


class HealthCheck(Component):
    def __init__(self, settings: CreateSettings, config: HealthCheckConfig):
        self.config = config
        self.logger = settings.logger
        self.address: tuple[str, int] | None = None
        self._host: Host | None = None
        self._up_since = datetime.datetime.now(datetime.UTC)
        app = web.Application()
        app.router.add_get(config.path, self._status)
        self.server = HTTPServer(app, config.endpoint, None, self.logger)

    async def start(self, host: Host) -> None:
        self._host = host
        self.address = await self.server.start()
        self.logger.info("health check on %s%s", self.server.url, self.config.path)

    async def shutdown(self) -> None:
        await self.server.stop()

    async def _status(self, _request: web.Request) -> web.Response:
        if self._host is not None and self._host.healthy():
            return web.json_response({"status": "Server available", "upSince": self._up_since.isoformat()}, status=200)
        return web.json_response({"status": "Server not available"}, status=503)
