"""Any River estimator as a kernel: one Python object per key, called per key of a rank.

Regressors predict with ``predict_one(x)`` and learn ``learn_one(x, y)``;
forecasters give ``forecast(horizon=1)[0]`` and learn ``learn_one(y)``;
unsupervised anomaly detectors score and learn ``x`` plus ``target``;
supervised ones ``score_one(x, y)`` and ``learn_one(x, y)``. A key's object
is created on its first record.

A model that diverges (a non-finite or overflowing prediction or score, or
an ``ArithmeticError``/``ValueError`` while predicting or learning) is
replaced by a fresh instance for that key and counted in :attr:`RiverKernel.resets`,
rather than kept. A forecaster that has not seen enough values yet (it
raises) simply has no prediction.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

import numpy as np
from river import base
from river.time_series.base import Forecaster

from otelml.processors.anomaly.kernels import DETECTOR, REGRESSOR, Kernel
from otelml.processors.anomaly.store import Field

# Predictions beyond this are a model running away, not a reading.
OVERFLOW = 1e100


class RiverKind(enum.Enum):
    REGRESSOR = "regressor"
    FORECASTER = "forecaster"
    DETECTOR = "detector"
    SUPERVISED_DETECTOR = "supervised detector"


def river_kind(estimator) -> RiverKind:
    if isinstance(estimator, Forecaster):
        return RiverKind.FORECASTER
    if isinstance(estimator, base.SupervisedAnomalyDetector):
        return RiverKind.SUPERVISED_DETECTOR
    if isinstance(estimator, base.AnomalyDetector):
        return RiverKind.DETECTOR
    if isinstance(estimator, base.Regressor):
        return RiverKind.REGRESSOR
    raise ValueError(f"{type(estimator).__name__} is neither a regressor, a forecaster nor an anomaly detector")


class _Diverged(Exception):
    """A key's model gave a non-finite or overflowing output."""


def _checked(value) -> float:
    value = float(value)
    if not math.isfinite(value) or abs(value) > OVERFLOW:
        raise _Diverged
    return value


class RiverKernel(Kernel):
    """Runs a River estimator per key; see the module docstring.

    Parameters
    ----------
    create
        Makes a new instance (for each new key, and to reset a diverged one).

    Examples
    --------
    >>> from river import linear_model
    >>> from otelml.processors.anomaly.kernels import Rank
    >>> kernel = RiverKernel(linear_model.LinearRegression)
    >>> state = {"model": np.full(1, None, dtype=object)}
    >>> rank = Rank(1, np.array([2.0]), np.zeros(1), features=[{"a": 1.0}])
    >>> kernel.predict(state, rank).tolist(), type(state["model"][0]).__name__
    ([0.0], 'LinearRegression')
    >>> rank.features[0]["a"] = math.inf  # a feature that makes the model diverge
    >>> kernel.learn(state, rank, rank.y, np.ones(1, dtype=bool))
    >>> kernel.predict(state, rank).tolist(), kernel.resets
    ([nan], 1)
    """

    fields = {"model": Field((), object, None)}

    def __init__(self, create: Callable[[], object]):
        self.create = create
        self.river_kind = river_kind(create())
        self.kind = DETECTOR if self.river_kind in (RiverKind.DETECTOR, RiverKind.SUPERVISED_DETECTOR) else REGRESSOR
        self.resets = 0

    def predict(self, state, rank):
        models, features, y = state["model"], rank.features, rank.y.tolist()
        out = np.empty(rank.size)
        kind = self.river_kind
        for row in range(rank.size):
            model = models[row]
            if model is None:
                model = models[row] = self.create()
            try:
                if kind is RiverKind.REGRESSOR:
                    out[row] = _checked(model.predict_one(features[row]))
                elif kind is RiverKind.FORECASTER:
                    out[row] = self._forecast(model)
                elif kind is RiverKind.DETECTOR:
                    out[row] = min(_checked(model.score_one({**features[row], "target": y[row]})), 1.0)
                else:
                    out[row] = min(_checked(model.score_one(features[row], y[row])), 1.0)
            except (_Diverged, ArithmeticError, ValueError):
                self._reset(models, row)
                out[row] = math.nan if self.kind == REGRESSOR else 0.0
        return np.maximum(out, 0.0) if self.kind == DETECTOR else out

    @staticmethod
    def _forecast(model) -> float:
        try:
            forecast = model.forecast(horizon=1)[0]
        except (IndexError, ValueError, ZeroDivisionError):
            # River forecasters raise until they have seen enough values.
            return math.nan
        return _checked(forecast)

    def learn(self, state, rank, y, learn):
        models, features, kind = state["model"], rank.features, self.river_kind
        values = y.tolist()
        for row in np.flatnonzero(learn).tolist():
            model = models[row]
            try:
                if kind is RiverKind.REGRESSOR or kind is RiverKind.SUPERVISED_DETECTOR:
                    model.learn_one(features[row], values[row])
                elif kind is RiverKind.FORECASTER:
                    model.learn_one(values[row])
                else:
                    model.learn_one({**features[row], "target": values[row]})
            except (ArithmeticError, ValueError):
                self._reset(models, row)

    def _reset(self, models: np.ndarray, row: int) -> None:
        models[row] = self.create()
        self.resets += 1
