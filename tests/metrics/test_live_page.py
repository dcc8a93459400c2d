"""The zpages extension's live page, in a real headless Chromium, fed by a live-view source."""

from __future__ import annotations

import aiohttp

from otelml.component import Kind
from otelml.extensions.zpages.config import ZPagesConfig
from otelml.extensions.zpages.extension import DATA_PATH, ZPages
from otelml.liveview import AlertView, KeyView, LiveView, LiveViewSource
from tests.metrics.browser import chromium_page
from tests.metrics.support import settings

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


async def test_page_shows_the_spiking_key_first_with_its_sparkline_and_refreshes(tmp_path):
    calm = [0.1, 0.12, 0.09, 0.11, 0.1, 0.13, 0.1, 0.12]
    source = Scores({"service.name=checkout span.name=GET /cart": calm, "service.name=auth span.name=Login": calm[::-1]})
    extension = await started(source)
    try:
        async with chromium_page(tmp_path / "profile") as (page, errors):
            await page.goto(extension.url)
            await page.wait_for_selector("#keys tbody tr[data-key]")
            source.series["service.name=auth span.name=Login"] = calm + [0.95, 0.4]
            source.alerts.append(AlertView(NOW, "service.name=auth span.name=Login", 0.95, "anomaly: score 0.950 >= threshold 0.600"))
            await page.wait_for_function(
                "document.querySelector('#keys tbody tr').dataset.key === 'service.name=auth span.name=Login'")
            await page.wait_for_selector("#alerts tbody td.key")
            first = page.locator("#keys tbody tr").first
            points = (await first.locator("polyline.scores").get_attribute("points")).split()
            assert len(points) == 10
            assert await first.locator("line.trend").count() == 1
            assert "anomalous" in await first.get_attribute("class")
            assert "threshold 0.600" in await page.locator("#alerts tbody").inner_text()
            assert "3 evicted" in await page.locator("#figures").inner_text()
            await page.screenshot(path=str(tmp_path / "anomalyz.png"), full_page=True)
            assert errors == []
    finally:
        await extension.shutdown()
    assert (tmp_path / "anomalyz.png").stat().st_size > 0
