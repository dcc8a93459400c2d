"""When a composite score counts as an anomaly: a static value or a per-key quantile."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from river import stats

from otelml.configmodel import ComponentConfig


class AdaptiveConfig(ComponentConfig):
    quantile: float = Field(0.995, gt=0, lt=1)
    window: int = Field(1000, ge=10)
    min: float = Field(0.5, ge=0, le=1)


class ThresholdConfig(ComponentConfig):
    """``threshold: 0.9`` is short for ``threshold: {static: 0.9}``."""

    static: float = Field(0.6, ge=0, le=1)
    adaptive: AdaptiveConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return value if isinstance(value, (dict, ThresholdConfig)) else {"static": value}


class Threshold:
    """Gives each record the threshold its composite score is compared with.

    Adaptive: the ``quantile`` of the key's last ``window`` composite scores
    (not counting the current one), never below ``min``.

    >>> policy = Threshold(ThresholdConfig(adaptive=AdaptiveConfig(quantile=0.5, window=10, min=0.1)))
    >>> state = policy.new_state()
    >>> for score in (0.2, 0.4, 0.6):
    ...     policy.learn(state, score)
    >>> policy.current(state)
    0.4
    """

    def __init__(self, config: ThresholdConfig):
        self.static = config.static
        self.adaptive = config.adaptive

    def new_state(self):
        return stats.RollingQuantile(self.adaptive.quantile, self.adaptive.window) if self.adaptive else None

    def current(self, state) -> float:
        if state is None:
            return self.static
        quantile = state.get()
        return self.adaptive.min if quantile is None else max(self.adaptive.min, quantile)

    def learn(self, state, score: float) -> None:
        if state is not None:
            state.update(score)
