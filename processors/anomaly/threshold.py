"""When a score counts as an anomaly: a static value, or a per-key quantile of its recent scores."""

from __future__ import annotations

import numpy as np
from river import stats

from otelml.processors.anomaly.config import ThresholdConfig
from otelml.processors.anomaly.store import Field


class Threshold:
    """Gives each record of a rank the threshold its score is compared with.

    Adaptive: the ``quantile`` of the key's last ``window`` scores (not
    counting the current one), never below ``min``; kept per key in River's
    :class:`~river.stats.RollingQuantile`.

    >>> from otelml.processors.anomaly.config import AdaptiveConfig
    >>> policy = Threshold(ThresholdConfig(adaptive=AdaptiveConfig(quantile=0.5, window=10, min=0.1)))
    >>> state = {"quantile": np.full(1, None, dtype=object)}
    >>> for score in (0.2, 0.4, 0.6):
    ...     policy.learn(state, 1, np.array([score]))
    >>> policy.current(state, 1).tolist()
    [0.4]
    """

    def __init__(self, config: ThresholdConfig):
        self.static = config.static
        self.adaptive = config.adaptive
        self.fields = {"quantile": Field((), object, None)} if self.adaptive else {}

    def current(self, state: dict, size: int) -> np.ndarray:
        if not self.adaptive:
            return np.full(size, self.static)
        floor = self.adaptive.min
        return np.array(
            [
                floor if quantile is None or quantile.get() is None else max(floor, quantile.get())
                for quantile in state["quantile"][:size].tolist()
            ],
            dtype=float,
        )

    def learn(self, state: dict, size: int, scores: np.ndarray) -> None:
        if not self.adaptive:
            return
        quantiles = state["quantile"]
        for row, score in enumerate(scores.tolist()):
            if quantiles[row] is None:
                quantiles[row] = stats.RollingQuantile(self.adaptive.quantile, self.adaptive.window)
            quantiles[row].update(score)
