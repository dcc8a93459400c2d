"""The ``anomaly_metrics`` connector: scored records in, per-key score metrics out.

Placed as an exporter of a pipeline after an ``anomaly`` processor and as
the receiver of a metrics pipeline, like the collector's spanmetrics
connector: it aggregates what it sees per key and sends the metrics every
``metrics_flush_interval`` (and once more at shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from otelml.component import Component, CreateSettings, Host
from otelml.connectors.anomaly_metrics import metadata
from otelml.connectors.anomaly_metrics.aggregate import Aggregator
from otelml.connectors.anomaly_metrics.config import DELTA, AnomalyMetricsConfig, check_dimension
from otelml.connectors.anomaly_metrics.reader import ScoredReader
from otelml.errors import PermanentError
from otelml.pdata import Batch, Signal, count_items


class AnomalyMetricsConnector(Component):
    mutates_data = False

    def __init__(self, settings: CreateSettings, config: AnomalyMetricsConfig, consumers: dict):
        self.config = config
        self.logger = settings.logger
        self.metrics = consumers[Signal.METRICS]
        self.id = str(settings.id)
        self.aggregator = Aggregator(
            config.histogram.explicit.buckets,
            config.max_keys,
            config.exemplars.max_per_data_point if config.exemplars.enabled else 0,
            config.aggregation_temporality == DELTA,
            config.namespace,
        )
        self.aggregator.start_ns = time.time_ns()
        self.readers: dict[Signal, ScoredReader] = {}
        self._overflow = settings.telemetry.metric(metadata.OVERFLOW_RECORDS).labels(self.id)
        self._keys = settings.telemetry.metric(metadata.KEYS).labels(self.id)
        self._task: asyncio.Task | None = None

    async def start(self, host: Host) -> None:
        self._task = asyncio.create_task(self._flush_every_interval())

    async def shutdown(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self.flush()

    async def consume(self, batch: Batch) -> None:
        signal = Signal.of(batch)
        reader = self.readers.get(signal) or self._reader(signal)
        overflowed = self.aggregator.overflowed
        self.aggregator.start_ns = time.time_ns()
        reader.read(batch, self.aggregator)
        self._overflow.inc(self.aggregator.overflowed - overflowed)
        self._keys.set(self.aggregator.tracked)

    def _reader(self, signal: Signal) -> ScoredReader:
        references = self.config.references(signal)
        try:
            for reference in references:
                check_dimension(reference, signal)
        except ValueError as error:
            raise PermanentError(f"{self.id}: dimensions: {error}") from None
        self.readers[signal] = ScoredReader(signal, references)
        return self.readers[signal]

    async def flush(self) -> None:
        """Send the metrics of every key now."""
        if self.config.metrics_expiration > 0:
            self.aggregator.expire(time.monotonic() - self.config.metrics_expiration)
            self._keys.set(self.aggregator.tracked)
        request = self.aggregator.export(time.time_ns())
        if not request.resource_metrics:
            return
        try:
            await self.metrics.consume(request)
        except Exception as error:  # the next flush sends cumulative totals again; delta ones are lost
            self.logger.error("could not send %d metric points: %s", count_items(request), error)

    async def _flush_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.config.metrics_flush_interval)
            await self.flush()
