"""The ``zpages`` extension: live debug pages, as the collector's zpages, on ``localhost:55679``.

It serves ``/debug/anomalyz``: the keys of every running component that
implements :class:`otelml.liveview.LiveViewSource` (the ``anomaly``
processors), with their recent scores, trend lines and alerts, refreshing
itself from ``/debug/anomalyz/data`` (JSON).
"""

from __future__ import annotations

import importlib.resources
import time

from aiohttp import web

from otelml.component import Component, CreateSettings, Host
from otelml.extensions.zpages.config import ZPagesConfig
from otelml.httpserver import HTTPServer
from otelml.liveview import LiveViewSource, as_dict

PAGE_PATH = "/debug/anomalyz"
DATA_PATH = PAGE_PATH + "/data"


class ZPages(Component):
    def __init__(self, settings: CreateSettings, config: ZPagesConfig):
        self.config = config
        self.logger = settings.logger
        self.host: Host | None = None
        self.page = importlib.resources.files(__package__).joinpath("anomalyz.html").read_bytes()
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get(PAGE_PATH, self._page)
        app.router.add_get(DATA_PATH, self._data)
        self.server = HTTPServer(app, config.endpoint, config.tls, self.logger)

    @property
    def url(self) -> str:
        """The live page's address, once started."""
        return self.server.url + PAGE_PATH

    async def start(self, host: Host) -> None:
        self.host = host
        await self.server.start()
        self.logger.info("live page of the anomaly processors on %s", self.url)

    async def shutdown(self) -> None:
        await self.server.stop()

    def sources(self) -> list[LiveViewSource]:
        components = self.host.components() if self.host is not None else []
        return [component for component in components if isinstance(component, LiveViewSource)]

    async def _index(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound(PAGE_PATH)

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.page, content_type="text/html", charset="utf-8")

    async def _data(self, _request: web.Request) -> web.Response:
        views = [as_dict(source.live_view(self.config.top)) for source in self.sources()]
        return web.json_response({"time": time.time(), "refresh": self.config.refresh, "sources": views})
