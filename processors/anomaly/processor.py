"""The ``anomaly`` processor: scores every span or log record and forecasts trouble per key.

One batch at a time: read key, target and time of every record
(:mod:`extract`), give each key its slot in the per-key arrays
(:mod:`state`), run each key's models over its records in order (rank by
rank with numpy for the built-in models, :mod:`vectorised`; record by record
otherwise, :mod:`scorer`), fit the score trends of the whole batch at once
(:mod:`trend`), then append the output attributes (:mod:`output`). Models
see only record timestamps, never the wall clock, so replaying recorded data
reproduces the live scores.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import numpy as np

from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.pdata import Batch, Signal
from otelml.processors.anomaly import state as checkpoint
from otelml.processors.anomaly import trend
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.extract import BatchReader, Columns, plain_exp, signed_exp
from otelml.processors.anomaly.features import FeatureBuilder
from otelml.processors.anomaly.layout import Layout
from otelml.processors.anomaly.output import AttributeWriter
from otelml.references import DEFAULT_KEYS, DEFAULT_TARGETS, parse_key, parse_target
from otelml.processors.anomaly.scorer import Outputs, RecordScorer
from otelml.processors.anomaly.scoring import ModelSpec
from otelml.processors.anomaly.state import KeyStore, KeySummary
from otelml.processors.anomaly.threshold import Threshold
from otelml.processors.anomaly.vectorised import VectorScorer

# Checkpoint paths in use by running processors: two must never share one.
_CLAIMED_PATHS: set[Path] = set()


class AnomalyProcessor(Component):
    """See the component README for every setting and output attribute."""

    mutates_data = True

    def __init__(self, settings: CreateSettings, config: AnomalyConfig, signal: Signal, next_consumer: Consumer,
                 per_record: bool = False):
        """``per_record`` forces the general scorer even where the vectorised one applies (tests compare the two)."""
        self.settings = settings
        self.config = config
        self.signal = signal
        self.next_consumer = next_consumer
        self.logger = settings.logger
        key = [parse_key(text) for text in (config.key or DEFAULT_KEYS[signal])]
        target = parse_target(config.target or DEFAULT_TARGETS[signal])
        log_target = config.transform == "log" or (config.transform == "auto" and target.field in ("duration", "rate"))
        self.rate_target = target.field == "rate"
        self.specs = [ModelSpec(m.model_id, m.name, m.params, m.weight) for m in config.models]
        # Features are computed only when a River model reads them, or a built-in one names them.
        river_models = any(spec.inputs is None for spec in self.specs)
        inputs = {name for spec in self.specs for name in (spec.inputs or ())}
        self.features = FeatureBuilder(config.features if river_models else None, inputs)
        self.reader = BatchReader(signal, key, target, log_target, need_errors=self.features.error,
                                  feature_attributes=self.features.attributes)
        # Rates can be far below one per second, where log1p would flatten them: they take a plain log.
        self.inverse = (plain_exp if self.rate_target else signed_exp) if log_target else None
        if not per_record and VectorScorer.supports(self.specs, config, self.rate_target):
            self.scorer = VectorScorer(self.specs, config)
        else:
            self.scorer = RecordScorer(self.specs, config, self.features, Threshold(config.threshold), log_target, self.rate_target)
        self.store = KeyStore(config.state.max_keys, config.state.ttl, {**self.scorer.fields, **trend.history_fields(config.trend.window)})
        self.writer = AttributeWriter(signal, [spec.id for spec in self.specs] if config.verbose else [])
        self.fingerprint = self._fingerprint()
        self._checkpoint_path = Path(config.state.checkpoint.path) if config.state.checkpoint.path else None
        self._checkpoint_task: asyncio.Task | None = None
        self._claimed = False
        self._started = False
        telemetry, name = settings.telemetry, str(settings.id)
        self._evictions = {
            reason: telemetry.counter("otelml_anomaly_evicted_keys", "Keys whose learned state was dropped, by reason (lru, ttl).",
                                      ["processor", "reason"]).labels(name, reason)
            for reason in ("lru", "ttl")}
        self._anomalies = telemetry.counter("otelml_anomaly_anomalies", "Records flagged as anomalies.", ["processor"]).labels(name)
        self._incidents = telemetry.counter("otelml_anomaly_predicted_incidents", "Records whose trend forecast crosses the threshold.",
                                            ["processor"]).labels(name)
        self._skipped = telemetry.counter("otelml_anomaly_unscored_records", "Records passed on unscored: their target is missing or not numeric.",
                                          ["processor"]).labels(name)
        self._keys = telemetry.gauge("otelml_anomaly_keys", "Keys with learned state.", ["processor"]).labels(name)
        self._reported_evictions = {"lru": 0, "ttl": 0}

    def _fingerprint(self) -> str:
        """What a checkpoint must match to be reused: the settings that shape the per-key state."""
        shaping = self.config.model_dump(mode="json", include={"key", "target", "transform", "features", "models", "threshold", "trend"})
        shaping["signal"] = self.signal.value
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()

    # Lifecycle -------------------------------------------------------------

    async def start(self, host: Host) -> None:
        self._started = True
        if self._checkpoint_path is None:
            return
        path = self._checkpoint_path.resolve()
        if path in _CLAIMED_PATHS:
            raise ValueError(f"checkpoint path {path} is already used by another anomaly processor; give each its own")
        try:
            self._restore()
        except BaseException:
            self._started = False
            raise
        _CLAIMED_PATHS.add(path)
        self._claimed = True
        self._checkpoint_task = asyncio.create_task(self._checkpoint_every_interval())

    async def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            try:
                await self._checkpoint_task
            except asyncio.CancelledError:
                pass
            self._checkpoint_task = None
        if self._claimed:
            try:
                self.save_checkpoint()
            finally:
                _CLAIMED_PATHS.discard(self._checkpoint_path.resolve())
                self._claimed = False

    def _restore(self) -> None:
        payload = checkpoint.read_checkpoint(self._checkpoint_path, self.config.state.checkpoint.signing_key())
        if payload is None:
            self.logger.info("no checkpoint at %s yet; starting with no learned state", self._checkpoint_path)
            return
        restored = checkpoint.load_state(payload)
        if restored["fingerprint"] != self.fingerprint:
            self.logger.warning("checkpoint %s was written with other model settings; starting afresh", self._checkpoint_path)
            return
        self.store.restore(restored)
        self._keys.set(len(self.store.keys))
        self.logger.info("restored %d keys from %s", len(self.store.keys), self._checkpoint_path)

    def save_checkpoint(self) -> None:
        payload = checkpoint.dump_state(self.store, self.fingerprint)
        checkpoint.write_checkpoint(self._checkpoint_path, payload, self.config.state.checkpoint.signing_key())

    async def _checkpoint_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.config.state.checkpoint.interval)
            # Pickle here, between batches, for a consistent snapshot; write in a thread.
            payload = checkpoint.dump_state(self.store, self.fingerprint)
            try:
                await asyncio.to_thread(checkpoint.write_checkpoint, self._checkpoint_path, payload,
                                        self.config.state.checkpoint.signing_key())
            except OSError as error:
                self.logger.error("cannot write checkpoint %s: %s", self._checkpoint_path, error)

    # Data ------------------------------------------------------------------

    async def consume(self, batch: Batch) -> None:
        self.process(batch)
        await self.next_consumer.consume(batch)

    def process(self, batch: Batch) -> None:
        """Score every record of ``batch`` in place."""
        columns = self.reader.read(batch)
        if columns.skipped:
            self._skipped.inc(columns.skipped)
        if not columns.records:
            return
        slots = self.store.assign(columns.keys, self.scorer.new_key)
        layout = Layout(columns.key_ids, len(columns.keys))
        outputs = self.scorer.score(self.store, slots, layout, columns)
        trends = trend.fit(self.store.arrays, slots, layout, columns.times, outputs.score, self.config.trend.window,
                           self.config.trend.horizon)
        enough = trends.points >= max(3, self.config.trend.window // 2)
        # A rising trend line that is below the threshold now and above it at the horizon.
        predicted = (outputs.ready & enough & (trends.slope > 0) & (trends.now < outputs.threshold)
                     & (trends.forecast >= outputs.threshold))
        self._finish_batch(columns, slots, layout, outputs, trends, predicted)

    def _finish_batch(self, columns: Columns, slots: np.ndarray, layout: Layout, outputs: Outputs,
                      trends: trend.Trends, predicted: np.ndarray) -> None:
        expected = np.where(outputs.has_expected, outputs.expected, np.nan)
        if self.inverse is not None:
            expected = self.inverse(expected)
        self.writer.write(columns.records, outputs.score, outputs.anomaly, expected, trends.forecast, trends.slope,
                          predicted, outputs.model_scores)
        arrays, key_ids, scored = self.store.arrays, layout.key_ids, outputs.scored
        size = len(slots)
        per_key = {"anomalies": np.bincount(key_ids, weights=outputs.anomaly, minlength=size),
                   "incidents": np.bincount(key_ids, weights=predicted, minlength=size)}
        for name, added in per_key.items():
            arrays[name][slots] += added.astype(np.int64)
        for name, values in (("max_score", outputs.score), ("last_seen", columns.times)):
            highest = arrays[name][slots]
            np.fmax.at(highest, key_ids[scored], values[scored])
            arrays[name][slots] = highest
        self.store.clock = max(self.store.clock, float(np.max(arrays["last_seen"][slots])))
        if self.config.alerts:
            self._write_alerts(columns, outputs, trends, predicted, expected)
        self.store.expire()
        anomalies, incidents = int(per_key["anomalies"].sum()), int(per_key["incidents"].sum())
        if anomalies:
            self._anomalies.inc(anomalies)
        if incidents:
            self._incidents.inc(incidents)
        for reason, total in (("lru", self.store.evicted_lru), ("ttl", self.store.evicted_ttl)):
            if total > self._reported_evictions[reason]:
                self._evictions[reason].inc(total - self._reported_evictions[reason])
                self._reported_evictions[reason] = total
        self._keys.set(len(self.store.keys))

    def _write_alerts(self, columns: Columns, outputs: Outputs, trends: trend.Trends, predicted: np.ndarray,
                      expected: np.ndarray) -> None:
        """The alert details, on flagged records and predicted incidents only."""
        for index in np.flatnonzero(outputs.anomaly | predicted).tolist():
            value = float(expected[index])
            reason = self._reason(float(outputs.score[index]), bool(outputs.anomaly[index]), bool(predicted[index]),
                                  float(trends.forecast[index]), float(outputs.threshold[index]),
                                  value if value == value else None, float(columns.actual[index]))
            key = columns.keys[columns.key_ids[index]]
            self.writer.write_alert(columns.records[index], reason, self.reader.describe(key), float(columns.actual[index]))

    def _reason(self, score: float, flagged: bool, incident: bool, forecast: float, limit: float,
                expected: float | None, actual: float) -> str:
        parts = []
        if flagged:
            versus = f"; expected {expected:.6g}, actual {actual:.6g}" if expected is not None else f"; actual {actual:.6g}"
            parts.append(f"anomaly: score {score:.3f} >= threshold {limit:.3f}{versus}")
        if incident:
            horizon = self.config.trend.horizon
            parts.append(f"predicted incident: score trend reaches {forecast:.3f} >= threshold {limit:.3f} within {horizon:g}s")
        return "; ".join(parts)

    def key_summaries(self) -> list[tuple[str, KeySummary]]:
        """Every live key, described, with its records, anomalies, incidents and highest score."""
        return [(self.reader.describe(key), self.store.summary(slot)) for key, slot in self.store.keys.items()]
