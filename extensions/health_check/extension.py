"""The ``health_check`` extension: HTTP 200 while every pipeline runs, 503 otherwise.

The body is JSON as the collector's: ``{"status": "Server available", ...}``.
"""

from __future__ import annotations

import datetime

from aiohttp import web

from otelml.component import Component, CreateSettings, Host
from otelml.extensions.health_check.config import HealthCheckConfig


class HealthCheck(Component):
    def __init__(self, settings: CreateSettings, config: HealthCheckConfig):
        self.config = config
        self.logger = settings.logger
        self.address: tuple[str, int] | None = None
        self._runner: web.AppRunner | None = None
        self._host: Host | None = None
        self._up_since = datetime.datetime.now(datetime.UTC)

    async def start(self, host: Host) -> None:
        self._host = host
        app = web.Application()
        app.router.add_get(self.config.path, self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host_name, _, port = self.config.endpoint.rpartition(":")
        await web.TCPSite(self._runner, host_name.strip("[]") or None, int(port)).start()
        self.address = self._runner.addresses[0][:2]
        self.logger.info("health check on http://%s:%d%s", *self.address, self.config.path)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _status(self, _request: web.Request) -> web.Response:
        if self._host is not None and self._host.healthy():
            return web.json_response({"status": "Server available", "upSince": self._up_since.isoformat()}, status=200)
        return web.json_response({"status": "Server not available"}, status=503)
