"""The models a config may name, and the two cheap built-in ones used by default.

:data:`MODELS` maps a config name to a constructor taking the entry's
``params``; adding a model is one line. Each key gets its own instance.
River regressors see the feature dict ``x`` and predict the target; anomaly
detectors see ``x`` plus ``target`` and score it themselves; forecasters
learn the target series and predict its next value.

The built-in models follow River's API and add one convention: a regressor
may return ``None`` from ``predict_one`` while it has no basis for a
prediction; the record is then not scored by that model.
"""

from __future__ import annotations

import functools
import math
from array import array

from river import anomaly, base, linear_model, preprocessing, time_series, tree


class EwmMean(base.Regressor):
    """Predicts the exponentially weighted mean of the values seen so far.

    With the residual normalisation the processor applies, this is a
    Gaussian detector with a slowly moving centre: cheap (two floats) and a
    good judge of spikes and level shifts.

    Parameters
    ----------
    alpha
        Weight of each new value; ``1 / alpha`` is roughly the memory in records.

    Examples
    --------
    >>> model = EwmMean(alpha=0.5)
    >>> model.predict_one({}) is None
    True
    >>> for y in (10.0, 20.0):
    ...     model.learn_one({}, y)
    >>> model.predict_one({})
    15.0
    """

    # Built-in models name the features they read, so no other is computed.
    inputs: tuple[str, ...] = ()

    def __init__(self, alpha: float = 0.001):
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.mean: float | None = None

    def learn_one(self, x, y):
        self.mean = y if self.mean is None else self.mean + self.alpha * (y - self.mean)

    def predict_one(self, x):
        return self.mean


class SeasonalProfile(base.Regressor):
    """Predicts the target from its usual level at this hour of the day (or week).

    Keeps one exponentially weighted mean per calendar bin, in UTC from the
    record's own timestamp, so a daily rhythm (traffic, batch jobs) is not
    mistaken for an anomaly and a missing daily peak is noticed.

    Parameters
    ----------
    period
        ``day`` (24 hourly bins) or ``week`` (168 hourly bins).
    alpha
        Weight of a new value in its bin's mean.

    Examples
    --------
    >>> model = SeasonalProfile(alpha=0.5)
    >>> model.learn_one({"hour": 9}, 80.0)
    >>> model.learn_one({"hour": 10}, 20.0)
    >>> model.predict_one({"hour": 9}), model.predict_one({"hour": 11}) is None
    (80.0, True)
    """

    def __init__(self, period: str = "day", alpha: float = 0.1):
        if period not in ("day", "week"):
            raise ValueError("period must be day or week")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.period = period
        self.alpha = alpha
        self.inputs = ("hour",) if period == "day" else ("hour_of_week",)
        self.profile = array("d", [math.nan] * (24 if period == "day" else 168))

    def learn_one(self, x, y):
        slot = x[self.inputs[0]]
        current = self.profile[slot]
        self.profile[slot] = y if current != current else current + self.alpha * (y - current)

    def predict_one(self, x):
        value = self.profile[x[self.inputs[0]]]
        return None if value != value else value


def _scaled(estimator):
    """River's linear models need standardised features; put a scaler in front."""
    return lambda **params: preprocessing.StandardScaler() | estimator(**params)


def _unit_range(estimator):
    """Half-space trees expect features in [0, 1]."""
    return lambda **params: preprocessing.MinMaxScaler() | estimator(**params)


MODELS = {
    "ewm_mean": EwmMean,
    "seasonal_profile": SeasonalProfile,
    "linear_regression": _scaled(linear_model.LinearRegression),
    "pa_regressor": _scaled(linear_model.PARegressor),
    "bayesian_linear_regression": _scaled(linear_model.BayesianLinearRegression),
    "hoeffding_tree_regressor": tree.HoeffdingTreeRegressor,
    # A fixed seed: the same trees in a replay as in the live run.
    "half_space_trees": _unit_range(functools.partial(anomaly.HalfSpaceTrees, seed=42)),
    "gaussian_scorer": anomaly.GaussianScorer,
    "holt_winters": functools.partial(time_series.HoltWinters, alpha=0.3, beta=0.1),
    "snarimax": functools.partial(time_series.SNARIMAX, p=2, d=0, q=1),
}
