"""The fast scorer: built-in models judged rank by rank with numpy.

The built-in models (``ewm_mean``, ``seasonal_profile``), the residual
scales and the warmup counts are a handful of floats per key, kept in the
:class:`~otelml.processors.anomaly.state.KeyStore` arrays. A batch is judged
*by rank* (see :mod:`layout`): every key's first record at once, then every
key's second record, and so on, so a key's records stay in order while the
Python work is per rank, not per record. Each step is the same IEEE
operation the per-record path (:mod:`scorer`) performs, so both give the
same bits; a test holds them to it.

Used when every model is built-in, the threshold is static and the target
is not ``rate``; everything else takes the per-record path.
"""

from __future__ import annotations

import numpy as np

from otelml.processors.anomaly.extract import Columns
from otelml.processors.anomaly.features import calendar_bins
from otelml.processors.anomaly.layout import Layout
from otelml.processors.anomaly.models import EwmMean, SeasonalProfile
from otelml.processors.anomaly.scoring import RELATIVE_FLOOR, Z_HALF_SCORE, ModelSpec
from otelml.processors.anomaly.scorer import Outputs
from otelml.processors.anomaly.state import KeyStore


class _EwmArrays:
    """:class:`EwmMean` over a rank of keys: the mean, NaN before the first value."""

    def __init__(self, name: str, model: EwmMean):
        self.mean = f"{name}.mean"
        self.alpha = model.alpha
        self.fields = {self.mean: ((), np.float64, np.nan)}
        self.period = None

    def predict(self, state: dict, size: int, bins: np.ndarray) -> np.ndarray:
        return state[self.mean][:size].copy()

    def learn(self, state: dict, size: int, bins: np.ndarray, y: np.ndarray, learn: np.ndarray) -> None:
        mean = state[self.mean][:size]
        np.copyto(mean, np.where(mean != mean, y, mean + self.alpha * (y - mean)), where=learn)


class _ProfileArrays:
    """:class:`SeasonalProfile` over a rank of keys: one mean per calendar bin, NaN while empty."""

    def __init__(self, name: str, model: SeasonalProfile):
        self.profile = f"{name}.profile"
        self.alpha = model.alpha
        self.fields = {self.profile: ((len(model.profile),), np.float64, np.nan)}
        self.period = model.period

    def predict(self, state: dict, size: int, bins: np.ndarray) -> np.ndarray:
        return state[self.profile][np.arange(size), bins]

    def learn(self, state: dict, size: int, bins: np.ndarray, y: np.ndarray, learn: np.ndarray) -> None:
        rows = np.flatnonzero(learn)
        profile, bins, y = state[self.profile], bins[rows], y[rows]
        current = profile[rows, bins]
        profile[rows, bins] = np.where(current != current, y, current + self.alpha * (y - current))


ARRAY_MODELS = {EwmMean: _EwmArrays, SeasonalProfile: _ProfileArrays}


def _max(scores: list[np.ndarray], weights: list[float], threshold: float) -> np.ndarray:
    # Python's max keeps the first of equal values and skips a NaN after the first: so does this.
    result = scores[0]
    for score in scores[1:]:
        result = np.where(score > result, score, result)
    return result


def _mean(scores: list[np.ndarray], weights: list[float], threshold: float) -> np.ndarray:
    return sum(scores) / len(scores)


def _weighted(scores: list[np.ndarray], weights: list[float], threshold: float) -> np.ndarray:
    return sum(s * w for s, w in zip(scores, weights)) / sum(weights)


def _vote(scores: list[np.ndarray], weights: list[float], threshold: float) -> np.ndarray:
    return sum((s >= threshold).astype(float) for s in scores) / len(scores)


# The counterparts of scoring.COMBINERS over arrays, adding in the same order.
ARRAY_COMBINERS = {"max": _max, "mean": _mean, "weighted": _weighted, "vote": _vote}


class VectorScorer:
    """Scores a batch rank by rank; see the module docstring.

    Parameters
    ----------
    specs
        The configured models, all built-in (see :meth:`supports`).
    config
        The processor's :class:`~otelml.processors.anomaly.config.AnomalyConfig`.
    """

    def __init__(self, specs: list[ModelSpec], config):
        self.models = [ARRAY_MODELS[type(probe)](f"model{position}", probe)
                       for position, probe in enumerate(spec.create() for spec in specs)]
        self.weights = [spec.weight for spec in specs]
        self.combine = ARRAY_COMBINERS[config.combine]
        self.residual_alpha = 1.0 - 0.5 ** (1.0 / config.residual_half_life)
        self.limit = config.threshold.static
        self.warmup = config.warmup
        self.learn_flagged = config.learn_from_anomalies
        self.verbose = config.verbose
        self.fields = {}
        for position, model in enumerate(self.models):
            self.fields.update(model.fields)
            # The residual scale of each model: mean, variance, residuals seen (a float, as n * alpha is).
            self.fields.update({f"scale{position}.{part}": ((), np.float64, 0.0) for part in ("mean", "var", "n")})

    @staticmethod
    def supports(specs: list[ModelSpec], config, rate_target: bool) -> bool:
        return (not rate_target and config.threshold.adaptive is None
                and all(type(spec.create()) in ARRAY_MODELS for spec in specs))

    def new_key(self) -> None:
        return None

    def score(self, store: KeyStore, slots: np.ndarray, layout: Layout, columns: Columns) -> Outputs:
        order, sizes, key_order = layout.by_rank()
        rows = slots[key_order]
        # The batch's keys' state, most records first: rank r works on the first sizes[r] rows.
        state = {name: store.arrays[name][rows] for name in self.fields}
        values = columns.values[order]
        bins = {period: calendar_bins(columns.times[order], period) for period in {m.period for m in self.models} if period}
        size = len(order)
        score, anomaly, ready = np.empty(size), np.empty(size, dtype=bool), np.empty(size, dtype=bool)
        expected, has_expected = np.empty(size), np.empty(size, dtype=bool)
        model_scores = np.empty((len(self.models), size)) if self.verbose else None
        counts = store.arrays["count"][rows]
        start = 0
        with np.errstate(all="ignore"):
            # Python floats overflow to inf silently; so do these.
            for rank, keys in enumerate(sizes.tolist()):
                block = slice(start, start + keys)
                start += keys
                y = values[block]
                scores, expected_sum, predictions = [], np.zeros(keys), np.zeros(keys)
                for position, model in enumerate(self.models):
                    model_bins = bins[model.period][block] if model.period else None
                    prediction = model.predict(state, keys, model_bins)
                    judged = prediction == prediction
                    z = self._observe(state, position, keys, y - prediction, judged)
                    scores.append(np.where(judged, z / (z + Z_HALF_SCORE), 0.0))
                    expected_sum = np.where(judged, expected_sum + prediction, expected_sum)
                    predictions += judged
                composite = self.combine(scores, self.weights, self.limit)
                is_ready = counts[:keys] + (rank + 1) > self.warmup
                flagged = is_ready & (composite >= self.limit)
                learn = np.ones(keys, dtype=bool) if self.learn_flagged else ~flagged
                for model in self.models:
                    model.learn(state, keys, bins[model.period][block] if model.period else None, y, learn)
                score[block], anomaly[block], ready[block] = composite, flagged, is_ready
                has_expected[block] = predictions > 0
                expected[block] = expected_sum / np.maximum(predictions, 1)
                if model_scores is not None:
                    model_scores[:, block] = scores
        for name, array in state.items():
            store.arrays[name][rows] = array
        store.arrays["count"][slots] += layout.counts
        outputs = Outputs(*(_in_batch_order(array, order) for array in (score, anomaly, np.full(size, self.limit), ready,
                                                                         expected, has_expected, np.ones(size, dtype=bool))),
                          None if model_scores is None else _in_batch_order(model_scores, order))
        return outputs

    def _observe(self, state: dict, position: int, keys: int, residual: np.ndarray, judged: np.ndarray) -> np.ndarray:
        """:meth:`ResidualScale.observe <otelml.processors.anomaly.scoring.ResidualScale.observe>` for a rank of keys."""
        mean, var, seen = (state[f"scale{position}.{part}"][:keys] for part in ("mean", "var", "n"))
        alpha = self.residual_alpha
        delta = residual - mean
        spread = np.sqrt(var)
        floor = RELATIVE_FLOOR * (1.0 + np.abs(mean))
        z = np.where(seen < 2, 0.0, np.abs(delta) / np.where(spread > floor, spread, floor))
        seen_now = seen + 1.0
        weight = np.where(seen_now * alpha < 1.0, 1.0 / seen_now, alpha)
        np.copyto(mean, mean + weight * delta, where=judged)
        np.copyto(var, (1.0 - weight) * (var + weight * delta * delta), where=judged)
        np.copyto(seen, seen_now, where=judged)
        return z


def _in_batch_order(array: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``array`` is in rank order (its last axis follows ``order``): put it back in batch order."""
    result = np.empty_like(array)
    result[..., order] = array
    return result
