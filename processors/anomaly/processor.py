"""The ``anomaly`` processor: scores every span or log record and forecasts trouble per key.

One batch at a time: read key, target and time of every record
(:mod:`extract`), give each key its slot in the per-key arrays
(:mod:`store`), compute the target (:mod:`target`), score rank by rank
(:mod:`engine`), fit the score trends of the whole batch at once
(:mod:`trend`), then append the output attributes (:mod:`output`). Models
see only record timestamps, never the wall clock, so replaying recorded data
reproduces the live scores.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence

import numpy as np

from otelml.checkpoint import Checkpointer
from otelml.component import Component, CreateSettings, Host
from otelml.connectors.anomaly_alerts.text import Details
from otelml.consumer import Consumer
from otelml.keysummary import KeySummary, KeySummarySource
from otelml.liveview import LiveView
from otelml.partitions import Assignment, Partition, PartitionOwner, PartitionSource, current_origin
from otelml.pdata import Batch, Signal
from otelml.processors.anomaly import checkpoint, extract_metrics, liveview, metadata
from otelml.processors.anomaly.changelog import PartitionedState
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.engine import Engine, Results
from otelml.processors.anomaly.extract import BatchReader, Columns
from otelml.processors.anomaly.extract_metrics import MetricReader
from otelml.processors.anomaly.forecast import Forecast
from otelml.processors.anomaly.incidents import incident_id
from otelml.processors.anomaly.models import reads_features
from otelml.processors.anomaly.output import AttributeWriter
from otelml.processors.anomaly.output_metrics import write_scores
from otelml.processors.anomaly.parents import Parents
from otelml.processors.anomaly.ranks import Ranks
from otelml.processors.anomaly.store import KeyStore, StateLayout
from otelml.processors.anomaly.target import Target
from otelml.processors.anomaly.trend import Trend, Trends
from otelml.references import parse_key, parse_target

# At most one eviction log line per this many seconds.
EVICTION_LOG_INTERVAL = 60.0
# Settings that shape the per-key state: a checkpoint written with others is not reused.
SHAPING = {
    "key",
    "target",
    "transform",
    "features",
    "models",
    "residuals",
    "calibration",
    "threshold",
    "incident",
    "trend",
    "histogram_quantile",
}


class AnomalyProcessor(Component, KeySummarySource, PartitionOwner):
    """See the component README for every setting and output attribute."""

    mutates_data = True

    def __init__(self, settings: CreateSettings, config: AnomalyConfig, signal: Signal, next_consumer: Consumer):
        self.settings = settings
        self.config = config
        self.signal = signal
        self.next_consumer = next_consumer
        self.logger = settings.logger
        key = [parse_key(text) for text in config.signal_key(signal)]
        features = config.features
        # The key's record rate is tracked for River models' rate feature only when some River model reads it.
        target = parse_target(config.signal_target(signal))
        rate_feature = features.rate and any(reads_features(model.name) for model in config.target_models(target))
        self.engine = Engine(config, Target(target, config.transform, rate_feature=rate_feature), ranges=config.alerts)
        self.target = self.engine.target
        river = self.engine.features is not None
        need_errors, feature_attributes = river and features.error, tuple(features.attributes) if river else ()
        self.reader: MetricReader | BatchReader
        if signal is Signal.METRICS:
            self.reader = MetricReader(key, self.target.reference, config.histogram_quantile, need_errors, feature_attributes)
        else:
            self.reader = BatchReader(signal, key, self.target.reference, need_errors, feature_attributes)
        self.parents = None
        if config.parent:
            parent_reader = BatchReader(signal, [parse_key(text) for text in config.parent], self.target.reference)
            self.parents = Parents(
                parent_reader, self.engine, config.state.max_keys, config.state.ttl, config.state.checkpoint.signing_key()
            )
        limit = config.trend.limit
        # The target's own trend, in its units, is fitted only to be held against a limit.
        self.above, self.below = (
            (limit.in_unit(limit.above, self.target.unit), limit.in_unit(limit.below, self.target.unit))
            if limit is not None
            else (None, None)
        )
        series = {"score": (0.0, 1.0), **({"target": (-np.inf, np.inf)} if limit is not None else {})}
        self.trend = Trend(config.trend.window, config.trend.horizon, series)
        layout = StateLayout(
            {
                **self.engine.fields,
                **{f"trend.{name}": field for name, field in self.trend.fields.items()},
                **liveview.FIELDS,
                **(extract_metrics.FIELDS if signal is Signal.METRICS else {}),
            },
            self.engine.classes,
        )
        self.store = KeyStore(config.state.max_keys, config.state.ttl, layout, config.state.checkpoint.signing_key())
        self.live = liveview.LiveViewKeeper(self.store, config.trend.horizon)
        if signal is not Signal.METRICS:
            self.writer = AttributeWriter(signal, [model.id for model in self.engine.models] if config.verbose else [])
        self.fingerprint = self._fingerprint()
        # Behind a Kafka receiver: keys per source partition, kept in a changelog (see changelog.py).
        self.keeps_partition_state = config.state.changelog.enabled
        self.partitions = PartitionedState(
            str(settings.id),
            self.store,
            self.fingerprint,
            config.state.changelog,
            config.state.checkpoint.signing_key(),
            self.process,
            self.logger,
        )
        self.checkpointer = Checkpointer(config.state.checkpoint, checkpoint.MAGIC, "an anomaly checkpoint", self.logger)
        self._started = False
        telemetry, name = settings.telemetry, str(settings.id)
        self._name = name
        self._evictions = {reason: telemetry.metric(metadata.EVICTED).labels(name, reason) for reason in ("lru", "ttl")}
        self._anomalies = telemetry.metric(metadata.ANOMALIES).labels(name)
        self._opened = telemetry.metric(metadata.INCIDENTS).labels(name)
        self._incidents = telemetry.metric(metadata.PREDICTED).labels(name)
        self._skipped = telemetry.metric(metadata.UNSCORED).labels(name)
        self._resets = telemetry.metric(metadata.RESETS)
        self._keys = telemetry.metric(metadata.KEYS).labels(name)
        self._reported_evictions = {"lru": 0, "ttl": 0}
        self._evictions_logged = {"lru": 0, "ttl": 0}
        self._eviction_logged_at = float("-inf")

    def _fingerprint(self) -> str:
        """What a checkpoint must match to be reused: the settings that shape the per-key state."""
        shaping = self.config.model_dump(mode="json", include=SHAPING)
        # The models that judge the target, set or by default: the same models share a checkpoint either way.
        shaping["models"] = [model.model_dump(mode="json") for model in self.config.target_models(self.target.reference)]
        shaping["signal"] = self.signal.value
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()

    # Lifecycle -------------------------------------------------------------

    async def start(self, host: Host) -> None:
        self._started = True
        try:
            self._restore()
        except BaseException:
            self._started = False
            raise
        self.checkpointer.start(self._dump)

    async def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.partitions.stop()
        await self.checkpointer.stop(self._dump)

    def _restore(self) -> None:
        path = self.checkpointer.path
        try:
            payload = self.checkpointer.load()
        except checkpoint.CheckpointError:
            checkpoint.refuse_earlier_format(path)
            raise
        if payload is None:
            if path is not None:
                self.logger.info("no checkpoint at %s yet; starting with no learned state", path)
            return
        content = checkpoint.load_payload(payload)  # decoded once, for the keys and the parents
        try:
            loaded = self.store.load(content, self.fingerprint)
            if loaded and self.parents is not None and content.parents:
                self.parents.store.load(content.parents, self.fingerprint)
        except checkpoint.CheckpointError as error:
            raise checkpoint.CheckpointError(f"{path}: {error}") from None
        if not loaded:
            self.logger.warning("checkpoint %s was written with other model settings; starting afresh", path)
            return
        self._keys.set(len(self.store.keys))
        self.logger.info(
            "restored %d keys%s from %s",
            len(self.store.keys),
            f" and {len(self.parents.store.keys)} parent groups" if self.parents is not None else "",
            path,
        )

    def _dump(self) -> bytes:
        """The checkpoint payload, pickled here, between batches, for a consistent snapshot."""
        parents = self.parents.store.dump(self.fingerprint) if self.parents is not None else b""
        return self.store.dump(self.fingerprint, parents)

    # Data ------------------------------------------------------------------

    async def consume(self, batch: Batch) -> None:
        self.process(batch)
        self.partitions.counted(current_origin())
        await self.next_consumer.consume(batch)

    # Behind a Kafka receiver: state per source partition (otelml.partitions) --------

    async def restore_partitions(self, source: PartitionSource, assignments: Sequence[Assignment]) -> None:
        await self.partitions.restore(source, assignments)
        self._keys.set(len(self.store.keys))

    async def save_partitions(self, source: PartitionSource, partitions: Sequence[Partition]) -> None:
        await self.partitions.save(source, partitions)

    def forget_partitions(self, source: PartitionSource, partitions: Sequence[Partition]) -> None:
        self.partitions.forget(source, partitions)
        self._keys.set(len(self.store.keys))

    def unsaved_from(self, source: PartitionSource, partition: Partition) -> int | None:
        return self.partitions.unsaved_from(source, partition)

    def process(self, batch: Batch) -> None:
        """Score every record of ``batch`` in place."""
        columns = self.reader.read(batch)
        if columns.records:
            slots = self.store.assign(columns.keys)
            if isinstance(self.reader, MetricReader):
                columns = self.reader.resolve(columns, slots, self.store.arrays)
            family = self.parents.read(batch) if self.parents is not None else None
            ranks = Ranks(columns.key_ids, len(columns.keys))
            rates = None
            if self.target.tracks_rate:
                rates = self.engine.rates(self.store.arrays, slots, ranks, columns.times)
                if self.target.is_rate:
                    columns, rates, ranks, family = self._with_rates(columns, rates, ranks, family)
            if self.target.novelty is not None:
                columns.actual = self.engine.novelties(self.store.arrays, slots, ranks, columns.actual)
            if columns.records:
                values = self.target.transform(columns.actual)
                if self.parents is not None and family is not None:
                    self.parents.step(self.store.arrays, slots, columns, family, values, rates)
                self._score(columns, slots, ranks, values, rates)
            self.store.expire()
            self._count_evictions()
            self._keys.set(len(self.store.keys))
        if columns.skipped:
            self._skipped.inc(columns.skipped)

    def _with_rates(
        self, columns: Columns, rates: np.ndarray, ranks: Ranks, family: Columns | None
    ) -> tuple[Columns, np.ndarray, Ranks, Columns | None]:
        """With ``target: rate``, the rate is the reading; records without one yet pass on unscored."""
        scorable = np.isfinite(rates)
        if not scorable.all():
            kept = np.flatnonzero(scorable)
            columns, rates = columns.subset(kept), rates[kept]
            family = family.subset(kept) if family is not None else None
            ranks = Ranks(columns.key_ids, len(columns.keys))
        columns.actual = rates
        return columns, rates, ranks, family

    def _score(self, columns: Columns, slots: np.ndarray, ranks: Ranks, values: np.ndarray, rates: np.ndarray | None) -> None:
        results = self.engine.score(
            self.store.arrays, slots, ranks, values, columns.times, rates, columns.errors, columns.attributes
        )
        history = {name[len("trend.") :]: array for name, array in self.store.arrays.items() if name.startswith("trend.")}
        fitted = self.trend.fit(history, slots, ranks, columns.times, {"score": results.score, "target": columns.actual})
        trends = fitted["score"]
        # A prediction is of an incident to come: never while the key has one.
        possible = (trends.points >= max(3, self.config.trend.window // 2)) & ~results.member
        if "target" in fitted:
            forecast = Forecast.of_limit(fitted["target"], self.above, self.below)
        else:
            forecast = Forecast.of_score(trends, results.threshold, results.ready)
        predicted = possible & forecast.crosses
        self._write(columns, results, trends, predicted, forecast)
        self._keep_summaries(columns, slots, ranks, results, predicted)
        self._keep_live_view(columns, slots, ranks, results, trends, predicted, forecast)
        for model_id, resets in self.engine.resets().items():
            self._resets.labels(self._name, model_id).inc(resets)
            self.logger.warning("model %s diverged and was reset for %d key(s)", model_id, resets)

    def _write(self, columns: Columns, results: Results, trends: Trends, predicted: np.ndarray, forecast: Forecast) -> None:
        if self.signal is Signal.METRICS:
            # Gauges beside the scored metrics: attributes on their points would split their series.
            write_scores(columns.records, results.score, trends.forecast, results.anomaly)
            return
        expected = self.target.inverse(results.expected)
        incident = np.zeros(len(columns.records), dtype=f"S{16}")
        for index in np.flatnonzero(results.member).tolist():
            incident[index] = incident_id(columns.keys[columns.key_ids[index]], float(results.opened[index])).encode()
        values = {
            "score": results.score,
            "anomaly": results.anomaly,
            "expected": expected,
            "forecast": trends.forecast,
            "slope": trends.slope,
            "predicted": predicted,
            "incident": incident,
            "opens": results.opens,
            "raw": results.raw,
        }
        values.update((f"model{position}", row) for position, row in enumerate(results.model_scores))
        self.writer.write(columns.records, values)
        if self.config.alerts:
            self._write_alerts(columns, results, predicted, forecast)

    def _write_alerts(self, columns: Columns, results: Results, predicted: np.ndarray, forecast: Forecast) -> None:
        """The structured alert details, on flagged records and on records that predict an incident."""
        alerting = np.flatnonzero(results.anomaly | predicted)
        if not len(alerting):
            return
        low, high = self.target.inverse(results.low[alerting]), self.target.inverse(results.high[alerting])
        recent, usual = self.target.inverse(results.recent[alerting]), self.target.inverse(results.usual[alerting])
        model_ids = [model.id for model in self.engine.models]
        fired = results.model_scores[:, alerting] >= results.threshold[alerting]
        for position, index in enumerate(alerting.tolist()):
            key = columns.keys[columns.key_ids[index]]
            self.writer.write_alert(
                columns.records[index],
                self.reader.describe(key),
                self.target.name,
                self.target.unit,
                float(columns.actual[index]),
                float(low[position]),
                float(high[position]),
                [model_id for model_id, hit in zip(model_ids, fired[:, position].tolist()) if hit],
                forecast.details(index) if predicted[index] else [],
                (float(recent[position]), float(usual[position])),
            )

    def _keep_summaries(self, columns: Columns, slots: np.ndarray, ranks: Ranks, results: Results, predicted: np.ndarray) -> None:
        arrays, key_ids, size = self.store.arrays, ranks.key_ids, len(slots)
        per_key = {
            "anomalies": np.bincount(key_ids, weights=results.anomaly, minlength=size),
            "incidents": np.bincount(key_ids, weights=predicted, minlength=size),
        }
        for name, added in per_key.items():
            arrays[name][slots] += added.astype(np.int64)
        for name, values in (("max_score", results.score), ("last_seen", columns.times)):
            highest = arrays[name][slots]
            np.fmax.at(highest, key_ids, values)
            arrays[name][slots] = highest
        self.store.clock = max(self.store.clock, float(np.max(columns.times)))
        for counter, total in (
            (self._anomalies, per_key["anomalies"].sum()),
            (self._incidents, per_key["incidents"].sum()),
            (self._opened, np.count_nonzero(results.opens)),
        ):
            if total:
                counter.inc(int(total))

    def _keep_live_view(
        self,
        columns: Columns,
        slots: np.ndarray,
        ranks: Ranks,
        results: Results,
        trends: Trends,
        predicted: np.ndarray,
        forecast: Forecast,
    ) -> None:
        """What the live page shows: each key's last threshold, forecast and slope, and its alerts."""
        self.live.record(
            slots, ranks, columns.times, results.threshold, trends.forecast, trends.slope, results.member, results.opened
        )
        alerting = np.flatnonzero(results.opens | predicted)
        if not len(alerting):
            return
        expected = self.target.inverse(results.expected[alerting])
        for position, index in enumerate(alerting.tolist()):
            key = columns.keys[columns.key_ids[index]]
            described, score = self.reader.describe(key), float(results.score[index])
            details = Details(
                key=described,
                target=self.target.name,
                unit=self.target.unit,
                actual=float(columns.actual[index]),
                score=score,
                expected=float(expected[position]) if expected[position] == expected[position] else None,
                forecast=float(trends.forecast[index]),
                **(forecast.values(index) if predicted[index] else {}),
            )
            if results.opens[index]:
                self.live.opened(
                    float(columns.times[index]), described, score, details, incident_id(key, float(results.opened[index]))
                )
            elif not results.member[index]:  # a prediction for a key already in an incident says nothing new
                self.live.predicted(float(columns.times[index]), described, score, details)

    def live_view(self, top: int) -> LiveView:
        """The live page's view of this processor (see :mod:`otelml.liveview`)."""
        return self.live.view(self._name, self.signal.value, top, self.reader.describe)

    def _count_evictions(self) -> None:
        """Eviction counters, and a log line at most every minute with the evictions since the last one."""
        for reason, total in (("lru", self.store.evicted_lru), ("ttl", self.store.evicted_ttl)):
            if total > self._reported_evictions[reason]:
                self._evictions[reason].inc(total - self._reported_evictions[reason])
                self._reported_evictions[reason] = total
        # Wall clock: this paces log lines, it does not score.
        now = time.monotonic()
        unlogged = {reason: total - self._evictions_logged[reason] for reason, total in self._reported_evictions.items()}
        if any(unlogged.values()) and now - self._eviction_logged_at >= EVICTION_LOG_INTERVAL:
            self._eviction_logged_at = now
            self._evictions_logged = dict(self._reported_evictions)
            self.logger.warning(
                "evicted the learned state of %d key(s) (%d least recently used beyond state.max_keys=%d, "
                "%d idle longer than state.ttl) since the last report",
                sum(unlogged.values()),
                unlogged["lru"],
                self.config.state.max_keys,
                unlogged["ttl"],
            )

    def key_summaries(self) -> list[tuple[str, KeySummary]]:
        """Every live key, described, with its records, anomalies, incidents and highest score."""
        return [(self.reader.describe(key), self.store.summary(slot)) for key, slot in self.store.keys.items()]
