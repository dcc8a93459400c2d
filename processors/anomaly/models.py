"""The models a config may name: the built-in River estimators and River's own.

:data:`MODELS` maps a config name to a constructor taking the entry's
``params``; adding a model is one line. River regressors see the feature
dict ``x`` and predict the target; anomaly detectors see ``x`` plus
``target`` and score it themselves; forecasters learn the target series and
predict its next value (see :mod:`~otelml.processors.anomaly.adapter`).

The built-in models are River estimators whose maths is a numpy kernel
(:mod:`~otelml.processors.anomaly.kernels`): ``learn_one`` and
``predict_one`` run the kernel on a one-row state, and the engine runs the
same kernel over a rank of keys. Before they have learned anything they
predict NaN (no prediction).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from river import anomaly, base, linear_model, preprocessing, time_series, tree

from otelml.processors.anomaly.burst import BurstKernel
from otelml.processors.anomaly.kernels import (
    DEVIATION,
    AutoregressionKernel,
    EwmKernel,
    Kernel,
    LevelShiftKernel,
    ProfileKernel,
    RangeKernel,
    Rank,
    one_row_state,
)
from otelml.processors.anomaly.lull import LullKernel
from otelml.processors.anomaly.novelty import HALF_SCORE, RarityKernel
from otelml.references import NOVELTY, RATE


class BuiltinModel:
    """A River estimator whose maths is a :class:`~otelml.processors.anomaly.kernels.Kernel`.

    ``x["time"]`` (seconds since the epoch) is the record time, for kernels
    that use it.
    """

    def make_kernel(self) -> Kernel:
        raise NotImplementedError

    def _start(self) -> None:
        """Called at the end of ``__init__``: the kernel, and the one key's state it works on."""
        self._kernel = self.make_kernel()
        self._one_row = one_row_state(self._kernel)

    def _rank(self, x: dict, y: float = math.nan) -> Rank:
        return Rank(1, np.array([y], dtype=float), np.array([float(x.get("time", math.nan))]))

    def learn_one(self, x, y):
        self._kernel.learn(self._one_row, self._rank(x, y), np.array([float(y)]), np.ones(1, dtype=bool))

    def predict_one(self, x):
        return float(self._kernel.predict(self._one_row, self._rank(x))[0])


class EwmMean(BuiltinModel, base.Regressor):
    """Predicts the exponentially weighted mean of the values seen so far.

    With the residual scale the processor applies, this is a Gaussian
    detector with a slowly moving centre: cheap (one float per key) and a
    good judge of spikes and level shifts.

    Parameters
    ----------
    alpha
        Weight of each new value; ``1 / alpha`` is roughly the memory in records.

    Examples
    --------
    >>> model = EwmMean(alpha=0.5)
    >>> model.predict_one({})
    nan
    >>> for y in (10.0, 20.0):
    ...     model.learn_one({}, y)
    >>> model.predict_one({})
    15.0
    """

    def __init__(self, alpha: float = 0.001):
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self._start()

    def make_kernel(self) -> Kernel:
        return EwmKernel(self.alpha)


class SeasonalProfile(BuiltinModel, base.Regressor):
    """Predicts the target from its usual level at this hour of the day (or week).

    Keeps one exponentially weighted mean per calendar bin, in UTC from the
    record's own time (``x["time"]``, seconds since the epoch), so a daily
    rhythm (traffic, batch jobs) is not mistaken for an anomaly and a
    missing daily peak is noticed. Without a time it neither predicts nor
    learns.

    Parameters
    ----------
    period
        ``day`` (24 hourly bins) or ``week`` (168 hourly bins).
    alpha
        Weight of a new value in its bin's mean.

    Examples
    --------
    >>> model = SeasonalProfile(alpha=0.5)
    >>> model.learn_one({"time": 9 * 3600.0}, 80.0)
    >>> model.learn_one({"time": 10 * 3600.0}, 20.0)
    >>> model.predict_one({"time": 9 * 3600.0 + 60}), model.predict_one({"time": 11 * 3600.0})
    (80.0, nan)
    """

    def __init__(self, period: str = "day", alpha: float = 0.1):
        if period not in ("day", "week"):
            raise ValueError("period must be day or week")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.period = period
        self.alpha = alpha
        self._start()

    def make_kernel(self) -> Kernel:
        return ProfileKernel(self.period, self.alpha)

    def learn_one(self, x, y):
        if "time" in x:
            super().learn_one(x, y)

    def predict_one(self, x):
        return super().predict_one(x) if "time" in x else math.nan


class Autoregression(BuiltinModel, base.Regressor):
    """Predicts the target from the key's own recent values, by online linear regression.

    The features are the key's last ``lags`` values and exponentially
    weighted means of its past values (one per alpha in ``ewm``), each
    standardised by its running mean and variance; the regression learns by
    stochastic gradient descent on the squared error. It is River's
    ``StandardScaler() | LinearRegression()`` on those features (the same
    updates in the same order, tested against it), written as a numpy
    kernel so that the processor runs it over a whole rank of keys at once:
    about 1 µs a record instead of some 25 µs.

    Parameters
    ----------
    lags
        How many of the key's previous values are features (0-8).
    ewm
        The weights of the exponentially weighted means that are features (each in (0, 1]).
    lr
        Step of the gradient descent (River's ``SGD(0.01)`` and ``intercept_lr``).
    after
        Records a key learns before the model predicts for it (the descent needs that long to find the key's level).

    Examples
    --------
    >>> model = Autoregression(after=10)
    >>> model.predict_one({})
    nan
    >>> for y in [10.0, 12.0] * 200:
    ...     model.learn_one({}, y)
    >>> round(model.predict_one({}), 1)
    9.8
    """

    def __init__(self, lags: int = 2, ewm: tuple[float, ...] = (0.3, 0.03), lr: float = 0.01, after: int = 100):
        if not 0 <= lags <= 8:
            raise ValueError("lags must be between 0 and 8")
        if not all(0 < alpha <= 1 for alpha in ewm) or lags + len(ewm) == 0:
            raise ValueError("ewm alphas must be in (0, 1], and there must be at least one feature")
        if not 0 < lr <= 1:
            raise ValueError("lr must be in (0, 1]")
        if after < 0:
            raise ValueError("after must be >= 0")
        self.after = after
        self.lags = lags
        self.ewm = tuple(ewm)
        self.lr = lr
        self._start()

    def make_kernel(self) -> Kernel:
        return AutoregressionKernel(self.lags, self.ewm, self.lr, self.after)


class BuiltinDetector(BuiltinModel):
    """A built-in River anomaly detector: it reads the value from ``x["target"]``.

    ``score_one`` gives the kernel's score, or for a deviation kernel the
    size of its statistic (the engine scores that against the key's usual
    spread, as it does a residual). Without a ``target`` there is nothing
    to judge or learn.
    """

    def learn_one(self, x):
        if "target" in x:
            super().learn_one(x, x["target"])

    def score_one(self, x):
        if "target" not in x:
            return 0.0
        score = float(self._kernel.predict(self._one_row, self._rank(x, x["target"]))[0])
        if self._kernel.kind == DEVIATION:
            return abs(score) if score == score else 0.0
        return score


class LevelShift(BuiltinDetector, base.AnomalyDetector):
    """How far the recent mean of the target has moved from its long-run level.

    Catches a level shift within a few records of its start, and a slow
    drift (a temperature creeping up, a misconfiguration slowly raising CPU)
    that no single record gives away.

    Parameters
    ----------
    fast
        Weight of a new value in the recent mean (about ``1 / fast`` records).
    slow
        Weight of a new value in the long-run level.

    Examples
    --------
    >>> model = LevelShift(fast=0.5, slow=0.01)
    >>> for value in (10.0, 10.0, 10.0):
    ...     model.learn_one({"target": value})
    >>> model.score_one({"target": 10.0})
    0.0
    >>> model.learn_one({"target": 30.0})
    >>> round(model.score_one({"target": 30.0}), 2)
    9.8
    """

    def __init__(self, fast: float = 0.03, slow: float = 0.001):
        if not 0 < slow < fast <= 1:
            raise ValueError("need 0 < slow < fast <= 1")
        self.fast = fast
        self.slow = slow
        self._start()

    def make_kernel(self) -> Kernel:
        return LevelShiftKernel(self.fast, self.slow)


class Range(BuiltinDetector, base.AnomalyDetector):
    """A value beyond the range the key has known, scored by how far beyond.

    Parameters
    ----------
    tolerance
        How far beyond the known range (as a fraction of its width) a value may lie and score 0.
    half_life
        Records after which the range's ends have moved half way back toward the key's level.
    widen
        The most one record widens the range, as a multiple of its width.
    after
        Records of the key before a value is judged against its range.
    settled
        Records after which the key's range is trusted as seen; before, its
        bounds lie further out, the more the younger the key.

    Examples
    --------
    >>> model = Range(after=20, settled=40)
    >>> for value in [9.0, 11.0] * 20:
    ...     model.learn_one({"target": value})
    >>> model.score_one({"target": 10.5}), round(model.score_one({"target": 14.0}), 2)
    (0.0, 0.85)
    """

    # The spread the distance past the range is measured in: as the processor's residual scales by default.
    SPREAD_HALF_LIFE = 2000.0
    SPREAD_CLIP = 5.0
    LEVEL_ALPHA = 0.001

    def __init__(
        self, tolerance: float = 0.05, half_life: float = 20000.0, widen: float = 1.0, after: int = 300, settled: int = 2000
    ):
        if tolerance < 0 or half_life <= 0 or widen <= 0 or after < 0 or settled < 0:
            raise ValueError("tolerance, after and settled must be >= 0, half_life and widen > 0")
        self.tolerance = tolerance
        self.half_life = half_life
        self.widen = widen
        self.after = after
        self.settled = settled
        self._start()

    def make_kernel(self) -> Kernel:
        return RangeKernel(
            self.tolerance,
            self.half_life,
            self.widen,
            self.after,
            self.settled,
            self.LEVEL_ALPHA,
            1.0 - 0.5 ** (1.0 / self.SPREAD_HALF_LIFE),
            self.SPREAD_CLIP,
        )


class Rarity(BuiltinDetector, base.AnomalyDetector):
    """How rare a log record's template is for its key, from the ``novelty`` target, on a fixed scale.

    The ``novelty`` target is already nats of rarity against the key's own
    vocabulary (0 for what it usually logs), so it needs no residual scale
    or calibration: the score is ``novelty / (novelty + half)``, and with the
    default ``half`` a template rarer than one record in a thousand of its
    key reaches the default threshold, 0.65 (see
    :mod:`~otelml.processors.anomaly.novelty`). For ``target: novelty`` only.

    Parameters
    ----------
    half
        Nats of rarity that score 0.5.

    Examples
    --------
    >>> model = Rarity()
    >>> model.score_one({"target": 0.0}), round(model.score_one({"target": math.log(200)}), 2)
    (0.0, 0.81)
    """

    def __init__(self, half: float = HALF_SCORE):
        if not half > 0:
            raise ValueError("half must be > 0")
        self.half = half
        self._start()

    def make_kernel(self) -> Kernel:
        return RarityKernel(self.half)


class Burst(BuiltinDetector, base.AnomalyDetector):
    """More records of the key over its last seconds than it usually has: a burst of a message, of requests.

    Reads only record times (``x["time"]``): a decayed count of the key's
    records, judged against its usual count on the count's own Poisson-like
    scale (see :mod:`~otelml.processors.anomaly.burst`). For ``target: rate``.

    Parameters
    ----------
    window
        Seconds of record time the count looks back over (it falls by ``e`` every ``window``).
    half_life
        Seconds of record time after which what was usual weighs half.

    Examples
    --------
    >>> model = Burst(window=10.0)
    >>> for second in range(120):
    ...     model.learn_one({"time": float(second), "target": 1.0})
    >>> round(model.score_one({"time": 120.0, "target": 1.0}), 2)
    0.02
    >>> for tenth in range(1, 31):
    ...     model.learn_one({"time": 120.0 + tenth / 10, "target": 10.0})
    >>> round(model.score_one({"time": 123.1, "target": 10.0}), 2)
    0.77
    """

    def __init__(self, window: float = 10.0, half_life: float = 600.0):
        if not (window > 0 and half_life > 0):
            raise ValueError("window and half_life must be > 0")
        self.window = window
        self.half_life = half_life
        self._start()

    def make_kernel(self) -> Kernel:
        return BurstKernel(self.window, self.half_life)


class Lull(BuiltinDetector, base.AnomalyDetector):
    """Fewer records of the key than it usually has: a drop in requests, in a service's log volume.

    Reads only record times (``x["time"]``): the log of the time the key's
    last ``records`` records took, judged against its usual value on the
    scale that records coming at random have at least (see
    :mod:`~otelml.processors.anomaly.lull`). For ``target: rate``.

    Parameters
    ----------
    records
        How many of the key's latest records the time is taken over (at least 5).
    half_life
        Seconds of the key's usual record time after which what was usual weighs half.

    Examples
    --------
    >>> model = Lull(records=10)
    >>> for second in range(300):
    ...     model.learn_one({"time": float(second), "target": 1.0})
    >>> round(model.score_one({"time": 300.0, "target": 1.0}), 2)
    0.0
    >>> for n in range(1, 9):
    ...     model.learn_one({"time": 299.0 + 10 * n, "target": 0.1})
    >>> round(model.score_one({"time": 389.0, "target": 0.1}), 2)
    0.69
    """

    def __init__(self, records: int = 20, half_life: float = 600.0):
        if not (records >= 5 and half_life > 0):
            raise ValueError("records must be >= 5 and half_life > 0")
        self.records = records
        self.half_life = half_life
        self._start()

    def make_kernel(self) -> Kernel:
        return LullKernel(self.records, self.half_life)


def _scaled(estimator):
    """River's linear models need standardised features; put a scaler in front."""
    return lambda **params: preprocessing.StandardScaler() | estimator(**params)


def _unit_range(estimator):
    """Half-space trees expect features in [0, 1]."""
    return lambda **params: preprocessing.MinMaxScaler() | estimator(**params)


MODELS = {
    "ewm_mean": EwmMean,
    "seasonal_profile": SeasonalProfile,
    "autoregression": Autoregression,
    "level_shift": LevelShift,
    "range": Range,
    "rarity": Rarity,
    "burst": Burst,
    "lull": Lull,
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


# Models that judge one target only, by name: the target they judge.
TARGET_ONLY = {"rarity": NOVELTY, "burst": RATE, "lull": RATE}


def reads_features(name: str) -> bool:
    """Whether model ``name`` reads the feature dict: River's models do, the built-in ones do not.

    >>> reads_features("ewm_mean"), reads_features("linear_regression")
    (False, True)
    """
    made = MODELS[name]
    return not (isinstance(made, type) and issubclass(made, BuiltinModel))


def build_model(name: str, params: dict):
    """A new instance of model ``name``; ``ValueError`` naming the problem when ``params`` do not fit."""
    try:
        return MODELS[name](**params)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot build {name} with params {params}: {error}") from None
