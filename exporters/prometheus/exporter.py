"""The ``prometheus`` exporter: a scrape endpoint serving the metrics of the pipelines it is in.

Data points are accumulated as they arrive (see :mod:`accumulator`) and
served at ``/metrics`` in the Prometheus text format, or in OpenMetrics
(with exemplars) when ``enable_open_metrics`` is on and the scraper asks
for it.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as TEXT_FORMAT
from prometheus_client.exposition import choose_encoder, generate_latest

from otelml.component import Component, CreateSettings, Host
from otelml.exporters.prometheus.accumulator import Accumulator
from otelml.exporters.prometheus.config import PrometheusExporterConfig
from otelml.exporters.prometheus.exposition import SeriesCollector
from otelml.httpserver import HTTPServer
from otelml.pdata import Batch, Signal

# A refused metric is logged once per this many seconds and reason, and always counted.
LOG_EVERY = 60.0


class PrometheusExporter(Component):
    mutates_data = False

    def __init__(self, settings: CreateSettings, config: PrometheusExporterConfig):
        self.config = config
        self.logger = settings.logger
        self.telemetry = settings.telemetry
        self.id = str(settings.id)
        self.accumulator = Accumulator(config)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SeriesCollector(self.accumulator, config))
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        self.server = HTTPServer(app, config.endpoint, config.tls, self.logger)
        self._last_logged: dict[str, float] = {}

    async def start(self, host: Host) -> None:
        await self.server.start()
        self.logger.info("serving metrics for Prometheus on %s/metrics", self.server.url)

    async def shutdown(self) -> None:
        await self.server.stop()

    async def consume(self, batch: Batch) -> None:
        taken, refused = self.accumulator.add(batch)
        self.telemetry.exporter_sent(self.id, Signal.METRICS, taken)
        for problem in refused:
            self.telemetry.drop(self.id, Signal.METRICS, 1, problem.reason)
            now = time.monotonic()
            if now - self._last_logged.get(problem.reason, -LOG_EVERY) >= LOG_EVERY:
                self._last_logged[problem.reason] = now
                self.logger.warning("metric not served: %s", problem)

    async def _scrape(self, request: web.Request) -> web.Response:
        if self.config.enable_open_metrics:
            encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        else:
            encoder, content_type = generate_latest, TEXT_FORMAT
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})
