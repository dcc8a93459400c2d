from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from otelml.configmodel import ComponentConfig
from otelml.processors.anomaly.features import FeaturesConfig
from otelml.references import parse_key, parse_target
from otelml.processors.anomaly.scoring import ModelSpec
from otelml.processors.anomaly.state import StateConfig
from otelml.processors.anomaly.threshold import ThresholdConfig
from otelml.processors.anomaly.trend import TrendConfig


class ModelConfig(ComponentConfig):
    """One model; a bare name is short for ``{name: <name>}``."""

    name: str
    id: str | None = None
    params: dict[str, Any] = {}
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def model_id(self) -> str:
        return self.id or self.name

    def validate_config(self) -> list[str]:
        try:
            ModelSpec(self.model_id, self.name, self.params, self.weight)
        except ValueError as error:
            field = "name" if str(error).startswith("unknown model") else "params"
            return [f"{field}: {error}"]
        return []


DEFAULT_MODELS = [ModelConfig(name="seasonal_profile"), ModelConfig(name="ewm_mean")]


class AnomalyConfig(ComponentConfig):
    # None: the signal's default (see references.DEFAULT_KEYS / DEFAULT_TARGETS).
    key: list[str] | None = None
    target: str | None = None
    transform: Literal["auto", "log", "none"] = "auto"
    features: FeaturesConfig = FeaturesConfig()
    models: list[ModelConfig] = DEFAULT_MODELS
    combine: Literal["mean", "max", "weighted", "vote"] = "max"
    residual_half_life: float = Field(2000.0, gt=0)
    threshold: ThresholdConfig = ThresholdConfig()
    warmup: int = Field(100, ge=0)
    learn_from_anomalies: bool = False
    trend: TrendConfig = TrendConfig()
    state: StateConfig = StateConfig()
    verbose: bool = False
    alerts: bool = False

    def validate_config(self) -> list[str]:
        problems = []
        if self.key is not None:
            if not self.key:
                problems.append("key: must name at least one reference")
            for index, text in enumerate(self.key):
                try:
                    parse_key(text)
                except ValueError as error:
                    problems.append(f"key::{index}: {error}")
        if self.target is not None:
            try:
                parse_target(self.target)
            except ValueError as error:
                problems.append(f"target: {error}")
        if not self.models:
            problems.append("models: name at least one model")
        seen = set()
        for index, model in enumerate(self.models):
            if model.model_id in seen:
                problems.append(f'models::{index}::id: "{model.model_id}" is used twice; give one of them another id')
            seen.add(model.model_id)
        return problems
