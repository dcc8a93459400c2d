"""From one model's output to a score in [0, 1], and from several scores to one.

A regressor (or forecaster) is judged by its residual, normalised per key by
the running mean and variance of its past residuals: ``z = |r - mean| / sd``
becomes ``z / (z + 3)``, so three standard deviations score 0.5, nine score
0.75 and the score keeps growing with the surprise instead of saturating.
An anomaly detector's own score (already in [0, 1]) is used as it is.

The composite score combines the models' scores; ``vote`` is the share of
models whose own score reaches the threshold:

>>> COMBINERS["max"]([0.2, 0.9], [1, 1], 0.8), COMBINERS["weighted"]([0.0, 1.0], [1, 3], 0.8)
(0.9, 0.75)
>>> COMBINERS["vote"]([0.2, 0.9], [1, 1], 0.8)
0.5
"""

from __future__ import annotations

import enum
import functools
import math
from typing import Callable

from river import base
from river.time_series.base import Forecaster

from otelml.processors.anomaly.models import MODELS

# z at which a residual scores 0.5.
Z_HALF_SCORE = 3.0
# Residual spread below this (relative to the prediction) counts as none at all.
RELATIVE_FLOOR = 1e-12


def z_to_score(z: float) -> float:
    """Map a normalised residual to [0, 1).

    >>> z_to_score(0.0), z_to_score(3.0), z_to_score(9.0)
    (0.0, 0.5, 0.75)
    """
    return z / (z + Z_HALF_SCORE)


class ResidualScale:
    """Running mean and variance of one model's residuals for one key.

    The weight of a new residual is ``max(alpha, 1 / n)``: an ordinary mean
    over the first records, an exponentially weighted one afterwards.

    >>> scale = ResidualScale()
    >>> round([scale.observe(r, alpha=0.01) for r in (1.0, -1.0, 1.0, -1.0)][-1], 3)
    1.414
    >>> round(scale.observe(3.0, alpha=0.01), 3)
    3.0
    """

    __slots__ = ("mean", "var", "n")

    def __init__(self):
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def observe(self, residual: float, alpha: float) -> float:
        """How many deviations ``residual`` lies from the mean (0 before two residuals), then learn it."""
        delta = residual - self.mean
        if self.n < 2:
            z = 0.0
        else:
            spread = math.sqrt(self.var)
            floor = RELATIVE_FLOOR * (1.0 + abs(self.mean))
            z = abs(delta) / (spread if spread > floor else floor)
        self.n += 1
        weight = 1.0 / self.n if self.n * alpha < 1.0 else alpha
        self.mean += weight * delta
        self.var = (1.0 - weight) * (self.var + weight * delta * delta)
        return z


class Kind(enum.Enum):
    REGRESSOR = "regressor"
    FORECASTER = "forecaster"
    DETECTOR = "detector"
    SUPERVISED_DETECTOR = "supervised detector"


def kind_of(estimator) -> Kind:
    if isinstance(estimator, Forecaster):
        return Kind.FORECASTER
    if isinstance(estimator, base.SupervisedAnomalyDetector):
        return Kind.SUPERVISED_DETECTOR
    if isinstance(estimator, base.AnomalyDetector):
        return Kind.DETECTOR
    if isinstance(estimator, base.Regressor):
        return Kind.REGRESSOR
    raise ValueError(f"{type(estimator).__name__} is neither a regressor, a forecaster nor an anomaly detector")


class ModelSpec:
    """One configured model: how to build it per key and how to score with it.

    Parameters
    ----------
    model_id
        The name used in ``otelml.score.<id>`` and in weights.
    name
        Registry name (see :data:`~otelml.processors.anomaly.models.MODELS`).
    params
        Constructor arguments.
    weight
        Weight in the ``weighted`` combination.
    """

    def __init__(self, model_id: str, name: str, params: dict, weight: float = 1.0):
        if name not in MODELS:
            raise ValueError(f'unknown model "{name}" (known: {", ".join(sorted(MODELS))})')
        self.id = model_id
        self.name = name
        self.params = dict(params)
        self.weight = weight
        probe = self.create()
        self.kind = kind_of(probe)
        # Built-in models say which features they read; River models read them all.
        self.inputs: tuple[str, ...] | None = getattr(probe, "inputs", None)
        self.predicts = self.kind in (Kind.REGRESSOR, Kind.FORECASTER)

    def create(self):
        try:
            return MODELS[self.name](**self.params)
        except (TypeError, ValueError) as error:
            raise ValueError(f"cannot build {self.name} with params {self.params}: {error}") from None

    def bind(self, estimator) -> tuple[Callable, Callable]:
        """The two calls the processor makes on ``estimator`` for each record.

        The first predicts (regressors, forecasters: ``judge(x) -> float | None``)
        or scores (detectors: ``judge(x, y) -> float`` in [0, 1]); the second
        learns (``learn(x, y)``).
        """
        if self.kind is Kind.REGRESSOR:
            if self.inputs is not None:
                # Built-in models predict finite numbers or None; no check needed.
                return estimator.predict_one, estimator.learn_one
            return functools.partial(_predict, estimator), functools.partial(_learn, estimator)
        if self.kind is Kind.FORECASTER:
            return functools.partial(_forecast, estimator), functools.partial(_learn_series, estimator)
        if self.kind is Kind.SUPERVISED_DETECTOR:
            return functools.partial(_score_supervised, estimator), estimator.learn_one
        return functools.partial(_score_unsupervised, estimator), functools.partial(_learn_unsupervised, estimator)


def _finite(value) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _predict(estimator, x: dict) -> float | None:
    try:
        return _finite(estimator.predict_one(x))
    except (ArithmeticError, ValueError):
        # A River model that diverged (overflowing weights) has no prediction.
        return None


def _learn(estimator, x: dict, y: float) -> None:
    try:
        estimator.learn_one(x, y)
    except ArithmeticError:
        return


def _forecast(estimator, x: dict) -> float | None:
    try:
        return _finite(estimator.forecast(horizon=1)[0])
    except (IndexError, ValueError, ZeroDivisionError):
        # River forecasters raise until they have seen enough values.
        return None


def _learn_series(estimator, x: dict, y: float) -> None:
    estimator.learn_one(y)


def _clip(score) -> float:
    return min(max(float(score), 0.0), 1.0) if score == score else 0.0


def _score_supervised(estimator, x: dict, y: float) -> float:
    return _clip(estimator.score_one(x, y))


def _score_unsupervised(estimator, x: dict, y: float) -> float:
    return _clip(estimator.score_one({**x, "target": y}))


def _learn_unsupervised(estimator, x: dict, y: float) -> None:
    estimator.learn_one({**x, "target": y})


def _max(scores: list[float], weights: list[float], threshold: float) -> float:
    return max(scores)


def _mean(scores: list[float], weights: list[float], threshold: float) -> float:
    return sum(scores) / len(scores)


def _weighted(scores: list[float], weights: list[float], threshold: float) -> float:
    return sum(s * w for s, w in zip(scores, weights)) / sum(weights)


def _vote(scores: list[float], weights: list[float], threshold: float) -> float:
    return sum(1 for s in scores if s >= threshold) / len(scores)


# Each makes one composite score in [0, 1] from the models' scores, their weights and the threshold.
COMBINERS = {"max": _max, "mean": _mean, "weighted": _weighted, "vote": _vote}
