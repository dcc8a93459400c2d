"""The scoring engine: every model, the residual scales, the composite, calibration, threshold and incidents.

A batch is judged *by rank* (see :mod:`~otelml.processors.anomaly.ranks`):
every key's first record at once, then every key's second record, and so
on, so a key's records stay in order while the Python work is per rank, not
per record. For each rank:

1. each model judges: a regressor's kernel predicts (NaN: no prediction)
   and its residual scale scores the residual against the key's usual
   spread, calibrated to the key's usual extremes
   (:mod:`~otelml.processors.anomaly.residuals`,
   :mod:`~otelml.processors.anomaly.calibration`); a deviation kernel's
   statistic is scored the same way; a detector's kernel scores the record
   itself;
2. ``combine`` (max, mean, weighted, vote) makes the composite score;
3. after ``warmup`` records of the key, a score at the threshold flags the record;
4. incidents open and close (:mod:`~otelml.processors.anomaly.incidents`);
5. the models learn the record, unless it was flagged and
   ``learn_from_anomalies`` is false; a regressor learns an isolated wild
   value winsorised to its usual range, so one glitch cannot drag it away.
   Residual scales always learn (robustly), so a lasting change widens them
   until records stop being flagged.

Each key's state lives in the store's arrays under the fields the stages
declare (:attr:`Engine.fields`); a batch gathers its keys' rows once, works
on them rank by rank, and writes them back.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from otelml.processors.anomaly.adapter import RiverKernel
from otelml.processors.anomaly.calibration import Calibration
from otelml.processors.anomaly.config import AnomalyConfig, ModelConfig, half_life_weight
from otelml.processors.anomaly.features import FeatureBuilder
from otelml.processors.anomaly.incidents import Incidents
from otelml.processors.anomaly.kernels import DETECTOR, REGRESSOR, Kernel, Rank
from otelml.processors.anomaly.models import BuiltinModel, build_model
from otelml.processors.anomaly.ranks import Ranks
from otelml.processors.anomaly.residuals import Z_HALF_SCORE, ResidualScale
from otelml.processors.anomaly.store import Field, Stage
from otelml.processors.anomaly.target import Target
from otelml.processors.anomaly.threshold import Threshold


def _max(scores: list[np.ndarray], weights: list[float], threshold: np.ndarray) -> np.ndarray:
    # The first of equal values, and NaN never wins.
    result = scores[0]
    for score in scores[1:]:
        result = np.where(score > result, score, result)
    return result


def _mean(scores, weights, threshold):
    return sum(scores) / len(scores)


def _weighted(scores, weights, threshold):
    return sum(s * w for s, w in zip(scores, weights)) / sum(weights)


def _vote(scores, weights, threshold):
    return sum((s >= threshold).astype(float) for s in scores) / len(scores)


# Each makes one composite score in [0, 1] per key from the models' scores, their weights and the threshold.
COMBINERS = {"max": _max, "mean": _mean, "weighted": _weighted, "vote": _vote}


class Model:
    """One configured model: its kernel, and the scale of a regressor's residual or a deviation kernel's statistic."""

    def __init__(self, config: ModelConfig, residual_alpha: float, clip: float, calibration: Calibration | None):
        self.id = config.model_id
        self.weight = config.weight
        probe = build_model(config.name, config.params)
        self.class_name = f"{type(probe).__module__}.{type(probe).__qualname__}"
        self.kernel: Kernel = (
            probe.make_kernel()
            if isinstance(probe, BuiltinModel)
            else RiverKernel(functools.partial(build_model, config.name, config.params))
        )
        self.river = isinstance(self.kernel, RiverKernel)
        self.predicts = self.kernel.kind == REGRESSOR
        self.scale = None if self.kernel.kind == DETECTOR else ResidualScale(residual_alpha, clip, calibration)


@dataclasses.dataclass
class Results:
    """Per scored record, in batch order.

    ``score`` is the composite of the models' calibrated scores (``raw``
    the composite of their plain ``z / (z + 3)``), ``expected``, ``low`` and ``high`` are in the models'
    units (NaN where no regressor predicted; ``low``/``high`` only when
    ranges were asked for), ``model_scores`` has one row per model, and
    ``opens``/``member``/``opened`` say whether the record opened an
    incident, belongs to one, and when that one opened. ``recent`` and
    ``usual`` are, where a level model (``level_shift``, or a rate
    detector: ``burst``, ``lull``) reached the threshold, the recent and
    long-run levels it compared, in the models' units (NaN elsewhere, and
    without ranges).
    """

    score: np.ndarray
    raw: np.ndarray
    anomaly: np.ndarray
    threshold: np.ndarray
    ready: np.ndarray
    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray
    model_scores: np.ndarray
    opens: np.ndarray
    member: np.ndarray
    opened: np.ndarray
    recent: np.ndarray
    usual: np.ndarray


class Engine:
    """Scores batches for one processor; see the module docstring.

    Parameters
    ----------
    config
        The processor's settings.
    target
        The target (transform, rate).
    ranges
        Also compute each record's usual range (for alert details).
    """

    def __init__(self, config: AnomalyConfig, target: Target, ranges: bool = False):
        self.config = config
        self.target = target
        self.ranges = ranges
        self.warmup = config.warmup
        self.learn_flagged = config.learn_from_anomalies
        self.verbose = config.verbose
        self.clip = config.residuals.clip
        self.combine = COMBINERS[config.combine]
        residual_alpha = half_life_weight(config.residuals.half_life)
        calibration = Calibration(config.calibration, config.warmup) if config.calibration.enabled else None
        self.models = [Model(model, residual_alpha, self.clip, calibration) for model in config.target_models(target.reference)]
        self.weights = [model.weight for model in self.models]
        self.features = FeatureBuilder(config.features) if any(model.river for model in self.models) else None
        self.threshold = Threshold(config.threshold)
        self.incidents = Incidents(config.incident)
        # Stage -> prefix of its fields in the store.
        self.stages: list[tuple[str, Stage]] = [("target.", target)]
        for position, model in enumerate(self.models):
            self.stages.append((f"model{position}.", model.kernel))
            if model.scale is not None:
                self.stages.append((f"model{position}.residual.", model.scale))
        for prefix, stage in (("features.", self.features), ("threshold.", self.threshold), ("incident.", self.incidents)):
            if stage is not None:
                self.stages.append((prefix, stage))
        self.fields: dict[str, Field] = {
            prefix + name: field for prefix, stage in self.stages for name, field in stage.fields.items()
        }
        self.classes = [model.class_name for model in self.models]

    def resets(self) -> dict[str, int]:
        """River models reset for diverging, per model id, since the last call."""
        found = {}
        for model in self.models:
            kernel = model.kernel
            if isinstance(kernel, RiverKernel) and kernel.resets:
                found[model.id] = kernel.resets
                kernel.resets = 0
        return found

    def rates(self, arrays: dict, slots: np.ndarray, ranks: Ranks, times: np.ndarray) -> np.ndarray:
        """Each record's rate (see :meth:`Target.step_rate`), in batch order; the keys' rate state moves on."""
        return self._target_steps(self.target.step_rate, arrays, slots, ranks, times)

    def novelties(self, arrays: dict, slots: np.ndarray, ranks: Ranks, codes: np.ndarray) -> np.ndarray:
        """Each record's novelty (see :meth:`Target.step_novelty`), in batch order; the keys' counts move on."""
        return self._target_steps(self.target.step_novelty, arrays, slots, ranks, codes)

    def _target_steps(self, step, arrays: dict, slots: np.ndarray, ranks: Ranks, inputs: np.ndarray) -> np.ndarray:
        """``step`` of the target over the batch rank by rank, on the keys' target state; results in batch order."""
        order, sizes, rows = self._order(slots, ranks)
        state = _gather(arrays, self._names(self.target), rows)
        views = _views(state, "target.")
        results = np.empty(len(order))
        start = 0
        for size in sizes.tolist():
            block = slice(start, start + size)
            results[block] = step(views, size, inputs[order[block]])
            start += size
        _scatter(arrays, state, rows)
        return _in_batch_order(results, order)

    def score(
        self,
        arrays: dict,
        slots: np.ndarray,
        ranks: Ranks,
        values: np.ndarray,
        times: np.ndarray,
        rates: np.ndarray | None = None,
        errors: list | None = None,
        attributes: list | None = None,
    ) -> Results:
        """Judge every record of a batch (``values`` in the models' units), then learn it."""
        order, sizes, rows = self._order(slots, ranks)
        names = ["count", *(name for name in self.fields if not name.startswith("target."))]
        state = _gather(arrays, names, rows)
        models = [
            (model, _views(state, f"model{position}."), _views(state, f"model{position}.residual."))
            for position, model in enumerate(self.models)
        ]
        views = {prefix: _views(state, prefix) for prefix in ("features.", "threshold.", "incident.")}
        y_all, t_all = values[order], times[order]
        size = len(order)
        out = {
            name: np.empty(size) for name in ("score", "raw", "threshold", "expected", "low", "high", "opened", "recent", "usual")
        }
        out.update({name: np.empty(size, dtype=bool) for name in ("anomaly", "ready", "opens", "member")})
        model_scores = np.empty((len(self.models), size))
        counts = state["count"]
        start = 0
        with np.errstate(all="ignore"):
            # NaN and inf are handled where they arise; numpy need not warn of them.
            for keys in sizes.tolist():
                block = slice(start, start + keys)
                start += keys
                rank = Rank(keys, y_all[block], t_all[block])
                if self.features is not None:
                    records = order[block]
                    rank.features = self.features.build(
                        views["features."],
                        rank,
                        None if rates is None else rates[records],
                        [errors[i] for i in records] if errors else None,
                        [attributes[i] for i in records] if attributes else None,
                    )
                self._judge(rank, block, models, views, counts, out, model_scores)
        _scatter(arrays, state, rows)
        return Results(
            **{name: _in_batch_order(column, order) for name, column in out.items()},
            model_scores=_in_batch_order(model_scores, order),
        )

    def _judge(
        self, rank: Rank, block: slice, models: list, views: dict, counts: np.ndarray, out: dict, model_scores: np.ndarray
    ) -> None:
        """One rank: judge, flag, open or close incidents, learn."""
        keys, y = rank.size, rank.y
        scores: list[np.ndarray] = []
        plain: list[np.ndarray] = []
        # A regressor's predictions and which of its residuals are isolated wild values; None for other kinds.
        predictions: list[tuple[np.ndarray, np.ndarray] | None] = []
        # The expected value and usual range are those of the regressor with the smallest residual spread for the key.
        expected, best_spread = np.full(keys, np.nan), np.full(keys, np.inf)
        low, high = np.full(keys, np.nan), np.full(keys, np.nan)
        # The levels of the level model that reached the threshold with the highest score (for alert details).
        recent, usual, level_score = np.full(keys, np.nan), np.full(keys, np.nan), np.zeros(keys)
        threshold = self.threshold.current(views["threshold."], keys)

        def keep_stronger(levels: tuple[np.ndarray, np.ndarray] | None, model_score: np.ndarray) -> None:
            nonlocal recent, usual, level_score
            if levels is not None:
                stronger = (model_score >= threshold) & (model_score > level_score)
                recent, usual = np.where(stronger, levels[0], recent), np.where(stronger, levels[1], usual)
                level_score = np.where(stronger, model_score, level_score)

        for model, state, scale_state in models:
            output = model.kernel.predict(state, rank)
            if model.scale is None:
                scores.append(output)
                plain.append(output)
                predictions.append(None)
                readings = model.kernel.levels(state, rank) if self.ranges else None
                if readings is not None:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        keep_stronger((self.target.transform(readings[0]), self.target.transform(readings[1])), output)
                continue
            judged = output == output
            verdict = model.scale.observe(scale_state, keys, y - output if model.predicts else output, judged, self.verbose)
            # A model that started judging after its key's warmup (autoregression, a River forecaster) says
            # nothing until its own scale has a warmup's worth of the key's records: no verdict from a few values.
            silent = (counts[:keys] >= self.warmup) & (verdict.seen < self.warmup)
            scores.append(np.where(silent, 0.0, verdict.score))
            plain.append(np.where(silent, 0.0, verdict.plain))
            if not model.predicts:
                predictions.append(None)
                keep_stronger(model.kernel.levels(state, rank) if self.ranges else None, scores[-1])
                continue
            predictions.append((output, verdict.isolated))
            spread = np.where(judged & (scale_state["n"][:keys] >= 2), scale_state["var"][:keys], np.inf)
            better = (spread < best_spread) | (judged & (expected != expected))
            expected = np.where(better, output, expected)
            best_spread = np.where(better, spread, best_spread)
            if self.ranges:
                model_low, model_high = model.scale.usual_range(scale_state, keys, output, Z_HALF_SCORE)
                low, high = np.where(better, model_low, low), np.where(better, model_high, high)
        score = self.combine(scores, self.weights, threshold)
        # The uncalibrated composite is only written with verbose.
        raw = self.combine(plain, self.weights, threshold) if self.verbose else score
        count = counts[:keys]
        count += 1
        ready = count > self.warmup
        flagged = ready & (score >= threshold)
        steps = self.incidents.step(views["incident."], keys, flagged, rank.times)
        learn = np.ones(keys, dtype=bool) if self.learn_flagged else ~flagged
        for (model, state, scale_state), prediction in zip(models, predictions):
            model.kernel.learn(state, rank, self._learned(model, scale_state, keys, y, prediction), learn)
        if self.features is not None:
            self.features.learn(views["features."], rank)
        self.threshold.learn(views["threshold."], keys, score)
        for name, column in (
            ("score", score),
            ("raw", raw),
            ("threshold", threshold),
            ("anomaly", flagged),
            ("ready", ready),
            ("expected", expected),
            ("low", low),
            ("high", high),
            ("opens", steps.opens),
            ("member", steps.member),
            ("opened", steps.opened),
            ("recent", recent),
            ("usual", usual),
        ):
            out[name][block] = column
        model_scores[:, block] = scores

    def _learned(
        self, model: Model, scale_state: dict, keys: int, y: np.ndarray, prediction: tuple[np.ndarray, np.ndarray] | None
    ) -> np.ndarray:
        """What a model learns: a regressor, an isolated wild target winsorised to its usual range."""
        if prediction is None or model.scale is None:
            return y
        output, isolated = prediction
        if not isolated.any():
            return y
        low, high = model.scale.usual_range(scale_state, keys, output, self.clip)
        return np.where(isolated & (high > low), np.clip(y, low, high), y)

    def _order(self, slots: np.ndarray, ranks: Ranks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order, sizes, key_order = ranks.by_rank()
        # The batch's keys' rows, most records first: rank r works on the first sizes[r] rows.
        return order, sizes, slots[key_order]

    def _names(self, stage: Stage) -> list[str]:
        return [prefix + name for prefix, owner in self.stages if owner is stage for name in stage.fields]


def _gather(arrays: dict, names: list[str], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: arrays[name][rows] for name in names}


def _scatter(arrays: dict, state: dict, rows: np.ndarray) -> None:
    for name, array in state.items():
        arrays[name][rows] = array


def _views(state: dict, prefix: str) -> dict[str, np.ndarray]:
    """A stage's fields by its own names (``model0.mean`` -> ``mean``)."""
    return {
        name[len(prefix) :]: array for name, array in state.items() if name.startswith(prefix) and "." not in name[len(prefix) :]
    }


def _in_batch_order(array: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``array`` is in rank order (its last axis follows ``order``): put it back in batch order."""
    result = np.empty_like(array)
    result[..., order] = array
    return result
