"""What a processor that keeps per-key state tells the summary of ``otelml replay``.

A processor implements :class:`KeySummarySource` (the ``anomaly`` processor
does); replay lists, for each such processor, its keys with the highest
scores.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable


@dataclasses.dataclass(frozen=True)
class KeySummary:
    """One key: its records, anomalies and incidents so far, and its highest score."""

    count: int
    anomalies: int
    incidents: int
    max_score: float


@runtime_checkable
class KeySummarySource(Protocol):
    """A component that can summarise its keys."""

    def key_summaries(self) -> list[tuple[str, KeySummary]]:
        """Every live key, described (``service.name=cart span.name=GET /cart``), with its summary."""
        ...
