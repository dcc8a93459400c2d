"""The ``anomaly`` processor: scores every span or log record and forecasts trouble per key.

One batch at a time: read key, target and time of every record
(:mod:`extract`), group records by key, run each key's models over its
records in order (:meth:`AnomalyProcessor._score_keys`), fit the score
trends of the whole batch at once (:mod:`trend`), then append the output
attributes (:mod:`output`). Models see only record timestamps, never the
wall clock, so replaying recorded data reproduces the live scores.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import json
from pathlib import Path

import numpy as np

from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.pdata import Batch, Signal
from otelml.processors.anomaly import state as checkpoint
from otelml.processors.anomaly import trend
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.extract import BatchReader, Columns, signed_exp
from otelml.processors.anomaly.features import FeatureBuilder, RateTracker
from otelml.processors.anomaly.output import AttributeWriter
from otelml.processors.anomaly.references import DEFAULT_KEYS, DEFAULT_TARGETS, parse_key, parse_target
from otelml.processors.anomaly.scoring import COMBINERS, ModelSpec, ResidualScale, z_to_score
from otelml.processors.anomaly.state import KeyState, KeyStore
from otelml.processors.anomaly.threshold import Threshold

# Checkpoint paths in use by running processors: two must never share one.
_CLAIMED_PATHS: set[Path] = set()


class Outputs:
    """Per-record results of one batch, indexed like :class:`Columns`."""

    def __init__(self, count: int, model_count: int):
        self.score = [0.0] * count
        self.anomaly = [False] * count
        self.expected: list[float | None] = [None] * count
        self.threshold = [0.0] * count
        self.ready = [False] * count
        # Filled only with verbose output.
        self.model_scores = [[0.0] * model_count] * count


class AnomalyProcessor(Component):
    """See the component README for every setting and output attribute."""

    mutates_data = True

    def __init__(self, settings: CreateSettings, config: AnomalyConfig, signal: Signal, next_consumer: Consumer):
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
        self.log_target = log_target
        # Rates can be far below one per second, where log1p would flatten them: they take a plain log.
        self.inverse = (math.exp if self.rate_target else signed_exp) if log_target else None
        self.weights = [spec.weight for spec in self.specs]
        self.combine = COMBINERS[config.combine]
        self.residual_alpha = 1.0 - 0.5 ** (1.0 / config.residual_half_life)
        self.threshold = Threshold(config.threshold)
        self.store = KeyStore(config.state.max_keys, config.state.ttl)
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
        self.store.keys = restored["keys"]
        self.store.clock = restored["clock"]
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
        groups: dict[tuple, list[int]] = {}
        for index, key in enumerate(columns.keys):
            group = groups.get(key)
            if group is None:
                groups[key] = [index]
            else:
                group.append(index)
        outputs = Outputs(len(columns.records), len(self.specs))
        touch, create = self.store.touch, self._new_state
        states = [touch(key, create) for key in groups]
        self._score_keys(states, list(groups.values()), columns, outputs)
        times, scores = columns.times, outputs.score
        segments = [(*state.trend, [times[i] for i in indices], [scores[i] for i in indices])
                    for state, indices in zip(states, groups.values())]
        trends = trend.fit(segments, self.config.trend.window, self.config.trend.horizon)
        order = [index for indices in groups.values() for index in indices]
        predicted = self._predicted_incidents(trends, order, outputs)
        self._finish_batch(columns, groups, states, outputs, trends, predicted)

    def _new_state(self) -> KeyState:
        models = [spec.create() for spec in self.specs]
        scales = [ResidualScale() if spec.predicts else None for spec in self.specs]
        return KeyState(models, scales, self.features.new_state(), self.threshold.new_state(), trend.empty_history(),
                        RateTracker() if self.rate_target else None)

    def _score_keys(self, states: list[KeyState], groups: list[list[int]], columns: Columns, outputs: Outputs) -> None:
        """Score, then teach, each key's records in order (the hot loop)."""
        features = self.features
        build = None if features.empty else features.build
        residual_alpha = self.residual_alpha
        threshold = self.threshold
        combine, weights = self.combine, self.weights
        warmup = self.config.warmup
        learn_flagged = self.config.learn_from_anomalies
        verbose = self.config.verbose
        values, times = columns.values, columns.times
        errors, attributes = columns.errors, columns.attributes
        specs = self.specs
        # One list reused for every record: each model writes its place each time.
        scores = [0.0] * len(specs)
        for state, indices in zip(states, groups):
            feature_state, threshold_state, rate = state.features, state.threshold, state.rate
            if state.calls is None:
                # Per model: its position, and the calls that predict (or detect) and learn.
                steps = [(position, *spec.bind(model), scale)
                         for position, (spec, model, scale) in enumerate(zip(specs, state.models, state.scales))]
                state.calls = steps, [step[2] for step in steps]
            steps, learners = state.calls
            for index in indices:
                when = times[index]
                if rate is not None:
                    current = rate.peek(when)
                    rate.observe(when)
                    if current is None or not math.isfinite(current):
                        continue
                    columns.actual[index] = current
                    values[index] = math.log(current) if self.log_target else current
                y = values[index]
                x = build(feature_state, when, errors[index] if errors else False,
                          attributes[index] if attributes else {}) if build else {}
                predicted_sum, predictions = 0.0, 0
                for position, judge, _, scale in steps:
                    if scale is None:
                        scores[position] = judge(x, y)
                        continue
                    prediction = judge(x)
                    if prediction is None:
                        scores[position] = 0.0
                        continue
                    # The scale always learns, so that a lasting change widens it until
                    # records stop being flagged and the models follow the new level.
                    scores[position] = z_to_score(scale.observe(y - prediction, residual_alpha))
                    predicted_sum += prediction
                    predictions += 1
                limit = threshold.current(threshold_state)
                composite = combine(scores, weights, limit)
                state.count += 1
                ready = state.count > warmup
                flagged = ready and composite >= limit
                if learn_flagged or not flagged:
                    for learn in learners:
                        learn(x, y)
                if feature_state is not None:
                    features.learn(feature_state, y, when)
                if threshold_state is not None:
                    threshold.learn(threshold_state, composite)
                if when > state.last_seen:
                    state.last_seen = when
                outputs.score[index] = composite
                outputs.anomaly[index] = flagged
                outputs.threshold[index] = limit
                outputs.ready[index] = ready
                if verbose:
                    outputs.model_scores[index] = scores.copy()
                if predictions:
                    outputs.expected[index] = predicted_sum / predictions

    def _predicted_incidents(self, trends: trend.Trends, order: list[int], outputs: Outputs) -> np.ndarray:
        """A rising trend line that is below the threshold now and above it at the horizon."""
        limit = np.asarray([outputs.threshold[i] for i in order])
        ready = np.asarray([outputs.ready[i] for i in order], dtype=bool)
        enough = trends.points >= max(3, self.config.trend.window // 2)
        return ready & enough & (trends.slope > 0) & (trends.now < limit) & (trends.forecast >= limit)

    def _finish_batch(self, columns: Columns, groups: dict, states: list[KeyState], outputs: Outputs,
                      trends: trend.Trends, predicted: np.ndarray) -> None:
        forecast, slope = trends.forecast.tolist(), trends.slope.tolist()
        predicted_list = predicted.tolist()
        write, alerts = self.writer.write, self.config.alerts
        verbose = self.config.verbose
        inverse = self.inverse
        anomalies = incidents = 0
        position = 0
        for (key, indices), state in zip(groups.items(), states):
            for index in indices:
                score, flagged, incident = outputs.score[index], outputs.anomaly[index], predicted_list[position]
                expected = outputs.expected[index]
                if expected is not None and inverse is not None:
                    expected = _inverse_or_none(inverse, expected)
                record = columns.records[index]
                write(record, score, flagged, expected, forecast[position], slope[position], incident,
                      outputs.model_scores[index] if verbose else ())
                if flagged or incident:
                    anomalies += flagged
                    incidents += incident
                    state.anomalies += flagged
                    state.incidents += incident
                    if alerts:
                        self.writer.write_alert(record, self._reason(score, flagged, incident, forecast[position],
                                                                     outputs.threshold[index], expected, columns.actual[index]),
                                                self.reader.describe(key), columns.actual[index])
                if score > state.max_score:
                    state.max_score = score
                position += 1
            if state.last_seen > self.store.clock:
                self.store.clock = state.last_seen
        self.store.expire()
        if anomalies:
            self._anomalies.inc(anomalies)
        if incidents:
            self._incidents.inc(incidents)
        for reason, total in (("lru", self.store.evicted_lru), ("ttl", self.store.evicted_ttl)):
            if total > self._reported_evictions[reason]:
                self._evictions[reason].inc(total - self._reported_evictions[reason])
                self._reported_evictions[reason] = total
        self._keys.set(len(self.store.keys))

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

    def key_summaries(self) -> list[tuple[str, KeyState]]:
        """Every live key, described, with its state (records, anomalies, incidents, highest score)."""
        return [(self.reader.describe(key), state) for key, state in self.store.keys.items()]


def _inverse_or_none(inverse, value: float) -> float | None:
    """A prediction back in target units; None when a diverged model's prediction has none."""
    try:
        return inverse(value)
    except OverflowError:
        return None
