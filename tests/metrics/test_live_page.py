"""The zpages extension's live page, in a real headless Chromium, fed by a live-view source."""

from __future__ import annotations

import random
import time

import aiohttp
import pytest

from otelml.component import Kind
from otelml.extensions.zpages.config import ZPagesConfig
from otelml.extensions.zpages.extension import DATA_PATH, ZPages
from otelml.liveview import AlertView, KeyView, LiveView, LiveViewSource
from tests.conftest import free_port
from tests.metrics.browser import chromium_page
from tests.metrics.support import settings
from tests.metrics.test_prometheus_scrape import post, spans

pytestmark = pytest.mark.integration

NOW = 1_700_000_000.0


class Scores:
    """A live-view source over hand-made score series (key -> recent scores, one a second)."""

    def __init__(self, series: dict[str, list[float]]):
        self.series = series
        self.alerts: list[AlertView] = []

    def live_view(self, top: int) -> LiveView:
        keys = []
        for key, scores in self.series.items():
            points = [(NOW - len(scores) + i, score) for i, score in enumerate(scores)]
            trend = ((points[0][0], scores[0]), (NOW + 30, scores[-1]))
            keys.append(KeyView(key, scores[-1], scores[-1], 0.6, points, trend, "c0ffee" if max(scores) >= 0.6 else None))
        keys.sort(key=lambda view: -max(score for _, score in view.points))
        return LiveView("anomaly/test", "traces", keys[:top], self.alerts, len(self.series), 100, 3)


class Host:
    def __init__(self, components: list):
        self._components = components

    def components(self) -> list:
        return self._components


async def started(source) -> ZPages:
    extension = ZPages(settings(Kind.EXTENSION, "zpages"), ZPagesConfig(endpoint="127.0.0.1:0", refresh="200ms", top=2))
    await extension.start(Host([object(), source]))
    return extension


async def test_data_lists_every_live_view_source_through_the_host():
    source = Scores({"service.name=checkout": [0.1, 0.2], "service.name=auth": [0.1, 0.9], "service.name=cart": [0.3]})
    assert isinstance(source, LiveViewSource)
    extension = await started(source)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(extension.server.url + DATA_PATH) as response:
                data = await response.json()
            async with session.get(extension.server.url + "/", allow_redirects=True) as response:
                assert response.status == 200 and "otelml · anomalyz" in await response.text()
    finally:
        await extension.shutdown()
    (view,) = data["sources"]
    assert data["refresh"] == 0.2
    assert (view["source"], view["key_count"], view["max_keys"], view["evictions"]) == ("anomaly/test", 3, 100, 3)
    assert [key["key"] for key in view["keys"]] == ["service.name=auth", "service.name=cart"]


CONFIG = {
    "receivers": {"otlp": {"protocols": {"http": {"endpoint": "${env:HTTP}"}}}},
    "processors": {"anomaly": {"warmup": 30}},
    "exporters": {"debug": {}},
    "extensions": {"zpages": {"endpoint": "${env:ZPAGES}", "refresh": "500ms"}},
    "service": {
        "extensions": ["zpages"],
        "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["anomaly"], "exporters": ["debug"]}},
        "telemetry": {"metrics": {"address": "${env:METRICS}"}},
    },
}
SPIKED = "service.name=payment span.name=Charge"


async def test_page_shows_the_spiking_key_first_with_its_sparkline(tmp_path, otelml_process):
    zpages = f"127.0.0.1:{free_port()}"
    otelml = otelml_process(CONFIG, extra_env={"ZPAGES": zpages}).start()
    noise = random.Random(5)
    start = time.time() - 120
    for service, operation, base in (("payment", "Charge", 60.0), ("auth", "Login", 5.0), ("cart", "GET /cart", 20.0)):
        post(otelml.http_url, spans(service, operation, [base * noise.lognormvariate(0, 0.1) for _ in range(150)], start, 1))
    async with chromium_page(tmp_path / "profile") as (page, errors):
        await page.goto(f"http://{zpages}/debug/anomalyz")
        await page.wait_for_selector("#keys tbody tr[data-key]")
        post(otelml.http_url, spans("payment", "Charge", [60.0 * 40] * 3, start + 20, 0xEE))
        await page.wait_for_function(f"document.querySelector('#keys tbody tr').dataset.key === {SPIKED!r}")
        await page.wait_for_selector("#alerts tbody td.key")
        first = page.locator("#keys tbody tr").first
        points = (await first.locator("polyline.scores").get_attribute("points")).split()
        assert len(points) >= 50
        assert await first.locator("line.trend").count() == 1
        assert "anomalous" in await first.get_attribute("class")
        assert "anomaly in service.name=payment span.name=Charge" in await page.locator("#alerts tbody").inner_text()
        assert "3 of 10000 keys" in await page.locator("#figures").inner_text()
        await page.screenshot(path=str(tmp_path / "anomalyz.png"), full_page=True)
        assert errors == []
    assert (tmp_path / "anomalyz.png").stat().st_size > 0
