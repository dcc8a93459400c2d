"""What a component shows on the live page: a small read-only protocol.

A component that scores keys (the ``anomaly`` processor) implements
:class:`LiveViewSource`; the ``zpages`` extension finds every running one
through the host and serves their views at ``/debug/anomalyz``. Views are
plain data (numbers, texts, lists), made on request, so that the page never
touches a component's state.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable


@dataclasses.dataclass(frozen=True)
class KeyView:
    """One key as it stands now.

    ``points`` are the key's recent ``(unix seconds, score)`` pairs, oldest
    first; ``trend`` the score's fitted trend line as two ``(unix seconds,
    score)`` ends, the second at the forecast horizon (so its score is the
    forecast), or None while the key has too few points; ``incident`` the
    id of the key's open incident, or None.
    """

    key: str
    score: float
    forecast: float
    threshold: float
    points: list[tuple[float, float]]
    trend: tuple[tuple[float, float], tuple[float, float]] | None = None
    incident: str | None = None


@dataclasses.dataclass(frozen=True)
class AlertView:
    """One incident opening (or predicted incident): when, which key, and why."""

    time: float
    key: str
    score: float
    reason: str
    incident: str | None = None


@dataclasses.dataclass(frozen=True)
class LiveView:
    """What one source shows.

    ``keys`` are its keys with the highest recent scores (the highest score
    among each key's ``points``) and those with the highest forecasts, at
    most ``top`` of each; ``alerts`` its recent alerts, newest first;
    ``key_count`` / ``max_keys`` how full its key store is and ``evictions``
    how many keys it has evicted since it started.
    """

    source: str
    signal: str
    keys: list[KeyView]
    alerts: list[AlertView]
    key_count: int
    max_keys: int
    evictions: int


@runtime_checkable
class LiveViewSource(Protocol):
    """A component with a live view."""

    def live_view(self, top: int) -> LiveView: ...


def as_dict(view: LiveView) -> dict:
    """The JSON form of a view, as the page reads it.

    >>> as_dict(LiveView("anomaly", "traces", [], [], 0, 10, 0))["max_keys"]
    10
    """
    return dataclasses.asdict(view)
