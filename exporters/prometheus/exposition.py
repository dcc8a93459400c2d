"""The accumulator's series as prometheus_client metric families, for its exposition formats."""

from __future__ import annotations

import bisect
import math

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from otelml.exporters.prometheus.accumulator import Accumulator, Series
from otelml.exporters.prometheus.config import PrometheusExporterConfig
from otelml.exporters.prometheus.translate import label_name

TARGET_INFO = "target_info"


class SeriesCollector(Collector):
    """A prometheus_client collector serving what the accumulator holds.

    Expired series are dropped at each scrape; ``target_info`` carries the
    attributes of every resource that still has series.
    """

    def __init__(self, accumulator: Accumulator, config: PrometheusExporterConfig):
        self.accumulator = accumulator
        self.config = config
        self.const_labels = {label_name(key): value for key, value in config.const_labels.items()}

    def collect(self):
        self.accumulator.expire()
        by_family: dict[str, Metric] = {}
        targets: set[tuple] = set()
        for series in self.accumulator.series.values():
            family = by_family.get(series.name)
            if family is None:
                family = by_family[series.name] = Metric(series.name, self.accumulator.families[series.name].help, series.kind)
            self._add_samples(family, series)
            if series.target:
                targets.add(series.target)
        if targets:
            name = f"{label_name(self.config.namespace)}_{TARGET_INFO}" if self.config.namespace else TARGET_INFO
            info = Metric(name, "Target metadata", "gauge")
            info.samples = [Sample(name, dict(target), 1.0) for target in sorted(targets)]
            yield info
        yield from by_family.values()

    def _add_samples(self, family: Metric, series: Series) -> None:
        labels = {**self.const_labels, **series.labels}
        stamp = series.time_ns / 1e9 if self.config.send_timestamps else None
        name = series.name
        if series.kind == "histogram":
            family.samples += _histogram_samples(name, labels, series, stamp)
        elif series.kind == "summary":
            family.samples += [
                Sample(name, {**labels, "quantile": floatToGoString(q)}, value, stamp) for q, value in series.quantiles
            ]
            family.samples += [
                Sample(name + "_count", labels, float(series.count), stamp),
                Sample(name + "_sum", labels, series.total, stamp),
            ]
        elif series.kind == "counter":
            exemplar = series.exemplars[-1] if series.exemplars else None
            family.samples.append(Sample(name + "_total", labels, series.value, stamp, exemplar))
        else:
            family.samples.append(Sample(name, labels, series.value, stamp))


def _histogram_samples(name: str, labels: dict, series: Series, stamp: float | None) -> list[Sample]:
    """Cumulative ``_bucket`` samples (each with the latest exemplar that falls in it), ``_count`` and ``_sum``."""
    bounds = [*series.bounds, math.inf]
    exemplars: dict[int, Exemplar] = {}
    for exemplar in series.exemplars:
        exemplars[bisect.bisect_left(bounds, exemplar.value)] = exemplar
    samples, cumulative = [], 0
    for index, bound in enumerate(bounds):
        cumulative += series.counts[index] if index < len(series.counts) else 0
        samples.append(
            Sample(name + "_bucket", {**labels, "le": floatToGoString(bound)}, float(cumulative), stamp, exemplars.get(index))
        )
    samples += [Sample(name + "_count", labels, float(series.count), stamp), Sample(name + "_sum", labels, series.total, stamp)]
    return samples
