"""The general scorer: each key's models judge, then learn, its records one at a time.

Works with every model (River estimators, forecasters, detectors), adaptive
thresholds and the ``rate`` target; the per-key models live as Python
objects in :attr:`KeyStore.objects`. Configurations of built-in models
only take the faster :mod:`vectorised` path, which gives the same scores.
"""

from __future__ import annotations

import math

import numpy as np

from otelml.processors.anomaly.extract import Columns
from otelml.processors.anomaly.features import FeatureBuilder, RateTracker
from otelml.processors.anomaly.layout import Layout
from otelml.processors.anomaly.scoring import COMBINERS, ModelSpec, ResidualScale, z_to_score
from otelml.processors.anomaly.state import KeyModels, KeyStore
from otelml.processors.anomaly.threshold import Threshold


class Outputs:
    """Per-record results of one batch, in batch order (``expected`` in the models' units)."""

    def __init__(self, score, anomaly, threshold, ready, expected, has_expected, scored, model_scores):
        self.score = np.asarray(score, dtype=float)
        self.anomaly = np.asarray(anomaly, dtype=bool)
        self.threshold = np.asarray(threshold, dtype=float)
        self.ready = np.asarray(ready, dtype=bool)
        self.expected = np.asarray(expected, dtype=float)
        self.has_expected = np.asarray(has_expected, dtype=bool)
        # False for records the models could not judge (a key's first record with ``target: rate``).
        self.scored = np.asarray(scored, dtype=bool)
        # One row per model, with verbose output only.
        self.model_scores = None if model_scores is None else np.asarray(model_scores, dtype=float)


class RecordScorer:
    """Scores, then teaches, each key's records in order, one record at a time.

    Parameters
    ----------
    specs
        The configured models.
    config
        The processor's :class:`~otelml.processors.anomaly.config.AnomalyConfig`.
    features
        Builds what River models see.
    threshold
        Static or adaptive threshold.
    log_target, rate_target
        How the target is transformed, and whether it is the key's record rate.
    """

    fields: dict[str, tuple] = {}

    def __init__(self, specs: list[ModelSpec], config, features: FeatureBuilder, threshold: Threshold,
                 log_target: bool, rate_target: bool):
        self.specs = specs
        self.features = features
        self.threshold = threshold
        self.log_target = log_target
        self.rate_target = rate_target
        self.weights = [spec.weight for spec in specs]
        self.combine = COMBINERS[config.combine]
        self.residual_alpha = 1.0 - 0.5 ** (1.0 / config.residual_half_life)
        self.warmup = config.warmup
        self.learn_flagged = config.learn_from_anomalies
        self.verbose = config.verbose

    def new_key(self) -> KeyModels:
        models = [spec.create() for spec in self.specs]
        scales = [ResidualScale() if spec.predicts else None for spec in self.specs]
        return KeyModels(models, scales, self.features.new_state(), self.threshold.new_state(),
                         RateTracker() if self.rate_target else None)

    def score(self, store: KeyStore, slots: np.ndarray, layout: Layout, columns: Columns) -> Outputs:
        """Judge every record of the batch (the hot loop of this path)."""
        features = self.features
        build = None if features.empty else features.build
        residual_alpha = self.residual_alpha
        threshold = self.threshold
        combine, weights = self.combine, self.weights
        warmup, learn_flagged, verbose = self.warmup, self.learn_flagged, self.verbose
        values, times, actual = columns.values.tolist(), columns.times.tolist(), columns.actual.tolist()
        errors, attributes = columns.errors, columns.attributes
        specs, counts = self.specs, store.arrays["count"]
        size = len(values)
        composites, flags, limits, readiness = [0.0] * size, [False] * size, [0.0] * size, [False] * size
        expected, has_expected, scored = [0.0] * size, [False] * size, [False] * size
        model_scores = [[0.0] * size for _ in specs] if verbose else None
        # One list reused for every record: each model writes its place each time.
        scores = [0.0] * len(specs)
        for slot, indices in zip(slots.tolist(), layout.groups()):
            state: KeyModels = store.objects[slot]
            count = int(counts[slot])
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
                    actual[index] = current
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
                count += 1
                ready = count > warmup
                flagged = ready and composite >= limit
                if learn_flagged or not flagged:
                    for learn in learners:
                        learn(x, y)
                if feature_state is not None:
                    features.learn(feature_state, y, when)
                if threshold_state is not None:
                    threshold.learn(threshold_state, composite)
                composites[index], flags[index], limits[index], readiness[index] = composite, flagged, limit, ready
                scored[index] = True
                if verbose:
                    for position, value in enumerate(scores):
                        model_scores[position][index] = value
                if predictions:
                    expected[index] = predicted_sum / predictions
                    has_expected[index] = True
            counts[slot] = count
        if self.rate_target:
            columns.values[:] = values
            columns.actual[:] = actual
        return Outputs(composites, flags, limits, readiness, expected, has_expected, scored, model_scores)
