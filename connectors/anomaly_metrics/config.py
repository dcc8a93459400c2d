"""Settings of the ``anomaly_metrics`` connector, named as the collector-contrib spanmetrics connector's."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from otelml import conventions
from otelml.configmodel import ComponentConfig, Duration
from otelml.pdata import Signal
from otelml.references import DEFAULT_KEYS, Reference, check_signal, parse_key

CUMULATIVE: Final = "AGGREGATION_TEMPORALITY_CUMULATIVE"
DELTA = "AGGREGATION_TEMPORALITY_DELTA"
# Score buckets: fine near the usual thresholds (0.5-0.7) and at the top.
DEFAULT_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
# On metrics the processor writes otelml.* gauges carrying otelml.metric (the scored metric's name).
DEFAULT_DIMENSIONS = {**DEFAULT_KEYS, Signal.METRICS: ["resource.service.name", f"attributes.{conventions.METRIC}"]}


class ExplicitBucketsConfig(ComponentConfig):
    buckets: list[float] = DEFAULT_BUCKETS


class HistogramConfig(ComponentConfig):
    unsupported_keys = {"exponential": "scores lie in [0, 1], which explicit buckets serve: use explicit::buckets"}

    explicit: ExplicitBucketsConfig = ExplicitBucketsConfig()

    def validate_config(self) -> list[str]:
        problems = []
        buckets = self.explicit.buckets
        if not buckets or any(b >= a for b, a in zip(buckets, buckets[1:])):
            problems.append("explicit::buckets: must be a non-empty, strictly increasing list")
        return problems


class ExemplarsConfig(ComponentConfig):
    enabled: bool = True
    max_per_data_point: int = Field(5, ge=1)


class AnomalyMetricsConfig(ComponentConfig):
    # References that name a key; None: the anomaly processor's default key of the input signal.
    dimensions: list[str] | None = None
    namespace: str = conventions.RECORDS_NAMESPACE
    histogram: HistogramConfig = HistogramConfig()
    exemplars: ExemplarsConfig = ExemplarsConfig()
    max_keys: int = Field(1000, ge=1)
    metrics_flush_interval: Duration = 15.0
    metrics_expiration: Duration = 0.0
    aggregation_temporality: Literal["AGGREGATION_TEMPORALITY_CUMULATIVE", "AGGREGATION_TEMPORALITY_DELTA"] = CUMULATIVE

    def validate_config(self) -> list[str]:
        problems = []
        for index, text in enumerate(self.dimensions or []):
            try:
                parse_key(text)
            except ValueError as error:
                problems.append(f"dimensions::{index}: {error}")
        if self.metrics_flush_interval <= 0:
            problems.append("metrics_flush_interval: must be positive")
        if self.metrics_expiration < 0:
            problems.append("metrics_expiration: must not be negative (0 keeps keys for good)")
        return problems

    def validate_signal(self, signal: Signal) -> list[str]:
        problems = []
        for index, text in enumerate(self.dimensions or []):
            try:
                check_dimension(parse_key(text), signal)
            except ValueError as error:
                problems.append(f"dimensions::{index}: {error}")
        return problems

    def references(self, signal: Signal) -> list[Reference]:
        """The parsed dimensions for records of ``signal``."""
        return [parse_key(text) for text in (self.dimensions or DEFAULT_DIMENSIONS[signal])]


def check_dimension(reference: Reference, signal: Signal) -> None:
    """Raise ``ValueError`` when ``reference`` cannot be read from records of ``signal``.

    Data points of metrics have resource, scope and attributes, not the
    fields of spans or log records.

    >>> check_dimension(parse_key("span.name"), Signal.METRICS)
    Traceback (most recent call last):
    ...
    ValueError: "span.name" does not exist in metrics
    """
    if signal is Signal.METRICS:
        if reference.attribute or reference.level == "scope":
            return
        raise ValueError(f'"{reference.text}" does not exist in metrics')
    check_signal(reference, signal)
