"""What River models see besides the key: one feature dict ``x`` per record of a rank.

Built from per-key arrays and the record, only when a River model is
configured. Every feature comes from the record itself or from the key's
own past, and time features use the record's timestamp, so a replay
computes the same values as the live run. Names:

- ``hour_sin``, ``hour_cos``, ``weekday_sin``, ``weekday_cos``: time of day and
  day of week on the unit circle (UTC), so 23:59 is next to 00:00;
- ``lag_1`` ... ``lag_n``: the key's previous target values, newest first;
- ``ewm_<alpha>``: exponentially weighted means of the key's past targets;
- ``rate``: the key's records per second (see :mod:`~otelml.processors.anomaly.target`);
- ``error``: 1 when the span status is ERROR or the log severity is ERROR or worse;
- ``attributes.<name>``: a numeric record attribute (absent when missing).
"""

from __future__ import annotations

import numpy as np

from otelml.processors.anomaly.config import FeaturesConfig
from otelml.processors.anomaly.kernels import EPOCH_WEEKDAY, SECONDS_PER_DAY, Rank, ewm_step
from otelml.processors.anomaly.store import Field

TWO_PI = 2.0 * np.pi


class FeatureBuilder:
    """Builds each rank's feature dicts and keeps each key's past (lags, means) in per-key arrays.

    Examples
    --------
    >>> builder = FeatureBuilder(FeaturesConfig(time=False, lags=1, ewm=[0.5], rate=False, error=True))
    >>> state = {name: np.full((1, *field.shape), field.fill) for name, field in builder.fields.items()}
    >>> rank = Rank(1, np.array([4.0]), np.array([0.0]))
    >>> builder.build(state, rank, rates=None, errors=[False], attributes=None)
    [{'error': 0.0}]
    >>> builder.learn(state, rank)
    >>> builder.build(state, rank, rates=None, errors=[True], attributes=None)
    [{'lag_1': 4.0, 'ewm_0.5': 4.0, 'error': 1.0}]
    """

    def __init__(self, config: FeaturesConfig):
        self.config = config
        self.ewm = list(config.ewm)
        self.fields = {}
        if config.lags:
            self.fields["lags"] = Field((config.lags,), np.float64, np.nan)
        if self.ewm:
            self.fields["ewm"] = Field((len(self.ewm),), np.float64, np.nan)
        self.names = [f"lag_{n + 1}" for n in range(config.lags)] + [f"ewm_{alpha:g}" for alpha in self.ewm]

    def build(
        self, state: dict, rank: Rank, rates: np.ndarray | None, errors: list | None, attributes: list | None
    ) -> list[dict]:
        """One dict per key of the rank; ``rates``, ``errors`` and ``attributes`` are the rank's records'."""
        size, config = rank.size, self.config
        columns: dict[str, np.ndarray] = {}
        if config.time:
            day_fraction = np.remainder(rank.times, SECONDS_PER_DAY) / SECONDS_PER_DAY
            weekday = (np.floor_divide(rank.times, SECONDS_PER_DAY) + EPOCH_WEEKDAY) % 7
            columns.update(
                hour_sin=np.sin(TWO_PI * day_fraction),
                hour_cos=np.cos(TWO_PI * day_fraction),
                weekday_sin=np.sin(TWO_PI * weekday / 7),
                weekday_cos=np.cos(TWO_PI * weekday / 7),
            )
        names = list(columns)
        rows = (
            [dict(zip(names, values)) for values in zip(*(columns[name].tolist() for name in names))]
            if names
            else [{} for _ in range(size)]
        )
        if self.names:
            past = np.concatenate([state[name][:size] for name in ("lags", "ewm") if name in state], axis=1).tolist()
            for x, values in zip(rows, past):
                # A key's past is shorter than the lags (or has no mean) at first: those features are absent.
                x.update((name, value) for name, value in zip(self.names, values) if value == value)
        if config.rate and rates is not None:
            for x, rate in zip(rows, rates.tolist()):
                x["rate"] = rate if np.isfinite(rate) else 0.0
        if config.error and errors is not None:
            for x, error in zip(rows, errors):
                x["error"] = 1.0 if error else 0.0
        if config.attributes and attributes is not None:
            for x, found in zip(rows, attributes):
                x.update((f"attributes.{name}", value) for name, value in found.items() if value is not None)
        return rows

    def learn(self, state: dict, rank: Rank) -> None:
        """Move each key's past on by its record (after it was scored)."""
        size, y = rank.size, rank.y
        if "lags" in state:
            lags = state["lags"][:size]
            lags[:, 1:] = lags[:, :-1].copy()
            lags[:, 0] = y
        if "ewm" in state:
            means = state["ewm"][:size]
            for column, alpha in enumerate(self.ewm):
                means[:, column] = ewm_step(means[:, column], y, alpha)
