"""What the anomaly processor shows on the live page (``otelml.liveview``), kept as it scores.

Per key, the last record's threshold, forecast and trend slope are kept in
the key store (three numbers); the recent scores and their times are the
trend's own history. Incident openings and predicted incidents go into a
short list of recent alerts with their reasons. A view is made on request,
for the keys with the highest recent peaks and those with the highest
forecasts.
"""

from __future__ import annotations

import collections

import numpy as np

from otelml.connectors.anomaly_alerts.text import ANOMALY, PREDICTED, Details, alert_text
from otelml.liveview import AlertView, KeyView, LiveView
from otelml.processors.anomaly.incidents import incident_id
from otelml.processors.anomaly.ranks import Ranks
from otelml.processors.anomaly.store import Field, KeyStore

# Recent alerts kept for the page.
ALERTS_KEPT = 50
FIELDS = {
    "live.threshold": Field((), np.float64, np.nan),
    "live.forecast": Field((), np.float64, 0.0),
    "live.slope": Field((), np.float64, 0.0),
    "live.incident": Field((), np.float64, np.nan),
}


class LiveViewKeeper:
    """Keeps each key's last threshold, forecast and slope, and the recent alerts.

    Parameters
    ----------
    store
        The processor's key store (its layout includes :data:`FIELDS` and the trend's history).
    horizon
        The trend's horizon: how far ahead of a key's last record its trend line is drawn.
    """

    def __init__(self, store: KeyStore, horizon: float):
        self.store = store
        self.horizon = horizon
        self.alerts: collections.deque[AlertView] = collections.deque(maxlen=ALERTS_KEPT)

    def record(
        self,
        slots: np.ndarray,
        ranks: Ranks,
        times: np.ndarray,
        threshold: np.ndarray,
        forecast: np.ndarray,
        slope: np.ndarray,
        member: np.ndarray,
        opened: np.ndarray,
    ) -> None:
        """Keep what each key's last record of a batch showed."""
        last = np.full(len(slots), -1, dtype=np.intp)
        np.maximum.at(last, ranks.key_ids, np.arange(len(times)))
        arrays = self.store.arrays
        for name, values in (
            ("live.threshold", threshold),
            ("live.forecast", forecast),
            ("live.slope", slope),
            ("live.incident", np.where(member, opened, np.nan)),
        ):
            arrays[name][slots] = values[last]

    def opened(self, when: float, key: str, score: float, details: Details, incident: str) -> None:
        """An incident opened on ``key`` (described): the alert the page lists, with the alert text the alerts connector would send."""
        self.alerts.appendleft(AlertView(when, key, score, alert_text(ANOMALY, details, 0.0), incident))

    def predicted(self, when: float, key: str, score: float, details: Details) -> None:
        """A predicted incident, listed once per key and horizon (every record of a rising trend predicts it)."""
        if any(alert.key == key and alert.incident is None and when - alert.time < self.horizon for alert in self.alerts):
            return
        self.alerts.appendleft(AlertView(when, key, score, alert_text(PREDICTED, details, 0.0)))

    def view(self, source: str, signal: str, top: int, describe) -> LiveView:
        """The keys with the ``top`` highest recent peaks and the ``top`` highest forecasts (above 0), and the recent alerts."""
        store = self.store
        entries = list(store.keys.items())
        keys: list[KeyView] = []
        if entries:
            slots = np.array([slot for _, slot in entries], dtype=np.intp)
            arrays = store.arrays
            scores, times = arrays["trend.score"][slots], arrays["trend.times"][slots]
            valid = np.arange(scores.shape[1]) >= (scores.shape[1] - arrays["trend.points"][slots])[:, None]
            peaks = np.where(valid, scores, -np.inf).max(axis=1)
            forecasts = arrays["live.forecast"][slots]
            chosen = dict.fromkeys(
                [*np.argsort(-peaks, kind="stable")[:top].tolist(), *np.argsort(-forecasts, kind="stable")[:top].tolist()]
            )
            for index in chosen:
                if not valid[index].any() or (peaks[index] <= 0 and forecasts[index] <= 0):
                    continue  # nothing to see yet (a key still warming up scores 0)
                key, slot = entries[index]
                keys.append(self._key_view(key, describe(key), slot, times[index][valid[index]], scores[index][valid[index]]))
        return LiveView(
            source, signal, keys, list(self.alerts), len(store.keys), store.max_keys, store.evicted_lru + store.evicted_ttl
        )

    def _key_view(self, key: tuple, described: str, slot: int, times: np.ndarray, scores: np.ndarray) -> KeyView:
        arrays = self.store.arrays
        forecast, slope = float(arrays["live.forecast"][slot]), float(arrays["live.slope"][slot])
        first, last = float(times[0]), float(times[-1])
        trend = None
        if len(times) >= 3:
            # The line as the trend fitted it: reaching the forecast at the horizon, never further ahead than it looks back.
            end = last + min(self.horizon, last - first)
            trend = ((first, float(np.clip(forecast - slope * (end - first), 0.0, 1.0))), (end, forecast))
        opened = float(arrays["live.incident"][slot])
        return KeyView(
            described,
            float(scores[-1]),
            forecast,
            float(arrays["live.threshold"][slot]),
            list(zip(times.tolist(), scores.tolist())),
            trend,
            incident_id(key, opened) if opened == opened else None,
        )
