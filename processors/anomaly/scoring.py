"""From one model's output to a score in [0, 1], and from several scores to one.

A regressor (or forecaster) is judged by its residual, normalised per key by
the running mean and variance of its past residuals: ``z = |r - mean| / sd``
becomes ``z / (z + 3)``, so three standard deviations score 0.5, nine score
0.75 and the score keeps growing with the surprise instead of saturating.
An anomaly detector's own score (already in [0, 1]) is used as it is.
"""

from __future__ import annotations

import enum
import math

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
    >>> for r in (1.0, -1.0, 1.0, -1.0):
    ...     scale.learn(r, alpha=0.01)
    >>> round(scale.z(3.0), 3)
    3.0
    """

    __slots__ = ("mean", "var", "n")

    def __init__(self):
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def z(self, residual: float) -> float:
        if self.n < 2:
            return 0.0
        spread = max(math.sqrt(self.var), RELATIVE_FLOOR * (1.0 + abs(self.mean)))
        return abs(residual - self.mean) / spread

    def learn(self, residual: float, alpha: float) -> None:
        self.n += 1
        weight = max(alpha, 1.0 / self.n)
        delta = residual - self.mean
        self.mean += weight * delta
        self.var = (1.0 - weight) * (self.var + weight * delta * delta)


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

    def expect(self, estimator, x: dict) -> float | None:
        """A regressor's or forecaster's prediction for this record (None if it has none)."""
        if self.kind is Kind.REGRESSOR:
            prediction = estimator.predict_one(x)
        else:
            try:
                prediction = estimator.forecast(horizon=1)[0]
            except (IndexError, ValueError, ZeroDivisionError):
                # River forecasters raise until they have seen enough values.
                return None
        return prediction if prediction is not None and math.isfinite(prediction) else None

    def detect(self, estimator, x: dict, y: float) -> float:
        """A detector's own score, clipped to [0, 1]."""
        if self.kind is Kind.SUPERVISED_DETECTOR:
            score = estimator.score_one(x, y)
        else:
            score = estimator.score_one({**x, "target": y})
        return min(max(float(score), 0.0), 1.0) if score == score else 0.0

    def learn(self, estimator, x: dict, y: float) -> None:
        if self.kind is Kind.REGRESSOR:
            estimator.learn_one(x, y)
        elif self.kind is Kind.FORECASTER:
            estimator.learn_one(y)
        elif self.kind is Kind.SUPERVISED_DETECTOR:
            estimator.learn_one(x, y)
        else:
            estimator.learn_one({**x, "target": y})


def combine(method: str, scores: list[float], weights: list[float], threshold: float) -> float:
    """One composite score in [0, 1] from the models' scores.

    ``vote`` is the share of models whose own score reaches ``threshold``.

    >>> combine("max", [0.2, 0.9], [1, 1], 0.8), combine("weighted", [0.0, 1.0], [1, 3], 0.8)
    (0.9, 0.75)
    >>> combine("vote", [0.2, 0.9], [1, 1], 0.8)
    0.5
    """
    if method == "max":
        return max(scores)
    if method == "mean":
        return sum(scores) / len(scores)
    if method == "weighted":
        return sum(s * w for s, w in zip(scores, weights)) / sum(weights)
    return sum(1 for s in scores if s >= threshold) / len(scores)
