"""Every setting of the ``anomaly`` processor (see its README for what each means)."""

from __future__ import annotations

import math
from typing import Any, Literal, overload

from pydantic import Field, model_validator

from otelml.checkpoint import CheckpointConfig
from otelml.configmodel import ComponentConfig, Duration, parse_duration
from otelml.pdata import Signal
from otelml.processors.anomaly.models import MODELS, TARGET_ONLY, build_model
from otelml.processors.anomaly.target import UNITS
from otelml.references import DEFAULT_KEYS, DEFAULT_TARGETS, NOVELTY, RATE, Reference, check_signal, parse_key, parse_target


class FeaturesConfig(ComponentConfig):
    """What River models see (see :mod:`~otelml.processors.anomaly.features`)."""

    time: bool = True
    lags: int = 2
    ewm: list[float] = [0.3, 0.03]
    rate: bool = True
    error: bool = True
    attributes: list[str] = []

    def validate_config(self) -> list[str]:
        problems = []
        if not 0 <= self.lags <= 32:
            problems.append("lags: must be between 0 and 32")
        problems += [f"ewm::{i}: must be in (0, 1]" for i, alpha in enumerate(self.ewm) if not 0 < alpha <= 1]
        problems += [f"attributes::{i}: must not be empty" for i, name in enumerate(self.attributes) if not name]
        return problems


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
        if self.name not in MODELS:
            return [f'name: unknown model "{self.name}" (known: {", ".join(sorted(MODELS))})']
        try:
            build_model(self.name, self.params)
        except ValueError as error:
            return [f"params: {error}"]
        return []


# Chosen by cross-validation on nab-dev (python -m evaluation.run --cross-validate; see evaluation/README.md).
DEFAULT_MODELS = [ModelConfig(name=name) for name in ("seasonal_profile", "ewm_mean", "level_shift", "range", "autoregression")]
# The defaults of the targets that are not a reading. A rate is smoothed from the key's own record times, so
# a rate shares most of its gaps with the one before, and a prediction from the last rates (autoregression)
# judges the newest gap alone: chance, in a key whose records come at random, with an exponential tail that
# flagged busy keys about once an hour (see the README's Models). Novelty is already nats of rarity, on a
# fixed scale.
TARGET_MODELS = {
    RATE: [ModelConfig(name=name) for name in ("seasonal_profile", "ewm_mean", "level_shift", "range")],
    NOVELTY: [ModelConfig(name="rarity")],
}


class ResidualsConfig(ComponentConfig):
    """The residual scale that turns a regressor's residual into a raw model score."""

    half_life: float = Field(2000.0, gt=0)
    # An isolated residual beyond clip deviations moves the scale (and models learn the target) as if it were at clip.
    clip: float = Field(10.0, gt=0)


class CalibrationConfig(ComponentConfig):
    """Each model's surprise judged against the key's own extreme quantile of it (see calibration.py)."""

    enabled: bool = True
    quantile: float = Field(0.999, gt=0.5, lt=1)
    rate: float = Field(0.01, gt=0, lt=1)


class AdaptiveConfig(ComponentConfig):
    quantile: float = Field(0.995, gt=0, lt=1)
    window: int = Field(1000, ge=10)
    min: float = Field(0.5, ge=0, le=1)


class ThresholdConfig(ComponentConfig):
    """``threshold: 0.9`` is short for ``threshold: {static: 0.9}``."""

    static: float = Field(0.65, ge=0, le=1)
    adaptive: AdaptiveConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return value if isinstance(value, (dict, ThresholdConfig)) else {"static": value}


class IncidentConfig(ComponentConfig):
    """When a key's incident closes: after ``quiet_records`` records below the threshold and ``quiet`` of record time."""

    quiet_records: int = Field(10, ge=1)
    quiet: Duration = 300.0

    def validate_config(self) -> list[str]:
        return ["quiet: must not be negative"] if self.quiet < 0 else []


class LimitConfig(ComponentConfig):
    """A level the target must not reach: ``{above: 80}``, ``{below: 10}``, ``{above: 500ms}`` for a duration."""

    above: float | str | None = None
    below: float | str | None = None

    def validate_config(self) -> list[str]:
        problems = [] if self.above is not None or self.below is not None else ["above: set above, below or both"]
        for name in ("above", "below"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    parse_duration(value)
                except ValueError:
                    problems.append(f"{name}: {value!r} is neither a number nor a duration such as 500ms")
        if (
            not problems
            and self.above is not None
            and self.below is not None
            and self.in_unit(self.below, "ms") >= self.in_unit(self.above, "ms")
        ):
            problems.append("below: must be less than above")
        return problems

    def signal_problems(self, unit: str) -> list[str]:
        """A duration given for a target that is not one (``unit``: the target's, ``ms`` for durations)."""
        return [
            f"{name}: {value!r} is a duration, but the target is not"
            for name in ("above", "below")
            if isinstance(value := getattr(self, name), str) and unit != "ms"
        ]

    @overload
    @staticmethod
    def in_unit(value: float | str, unit: str) -> float: ...

    @overload
    @staticmethod
    def in_unit(value: None, unit: str) -> None: ...

    @staticmethod
    def in_unit(value: float | str | None, unit: str) -> float | None:
        """A limit in the target's unit: a duration (``500ms``) in milliseconds, a number as given.

        >>> LimitConfig.in_unit("1.5s", "ms"), LimitConfig.in_unit(80, "")
        (1500.0, 80.0)
        """
        if value is None:
            return None
        if isinstance(value, str):
            seconds = parse_duration(value)
            return seconds * 1000.0 if unit == "ms" else seconds
        return float(value)


class TrendConfig(ComponentConfig):
    window: int = 60
    horizon: Duration = 300.0
    limit: LimitConfig | None = None

    def validate_config(self) -> list[str]:
        problems = []
        if not 3 <= self.window <= 10000:
            problems.append("window: must be between 3 and 10000 scores")
        if self.horizon <= 0:
            problems.append("horizon: must be positive")
        return problems


class ChangelogConfig(ComponentConfig):
    """The per-partition state changelog, used behind a Kafka receiver (see processors/anomaly/changelog.py)."""

    enabled: bool = True
    # How often changed keys are written, and so how often the receiver can commit.
    interval: Duration = 1.0
    # Replicas of each changelog partition when the topic is created.
    replication_factor: int = Field(1, ge=1)
    # Source messages replayed at most when the changelog is behind the committed offset.
    max_replay: int = Field(100_000, ge=0)

    def validate_config(self) -> list[str]:
        return ["interval: must be positive"] if self.interval <= 0 else []


class StateConfig(ComponentConfig):
    max_keys: int = Field(10000, ge=1)
    ttl: Duration = 3600.0
    checkpoint: CheckpointConfig = CheckpointConfig()
    changelog: ChangelogConfig = ChangelogConfig()

    def validate_config(self) -> list[str]:
        return ["ttl: must not be negative (0 keeps idle keys)"] if self.ttl < 0 else []


class AnomalyConfig(ComponentConfig):
    # None: the signal's default (see references.DEFAULT_KEYS / DEFAULT_TARGETS).
    key: list[str] | None = None
    # References of the group whose baseline a new key borrows (see parents.py); None: none.
    parent: list[str] | None = None
    target: str | None = None
    transform: Literal["auto", "log", "none"] = "auto"
    features: FeaturesConfig = FeaturesConfig()
    # None: the target's default (TARGET_MODELS, else DEFAULT_MODELS).
    models: list[ModelConfig] | None = None
    combine: Literal["mean", "max", "weighted", "vote"] = "max"
    residuals: ResidualsConfig = ResidualsConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    warmup: int = Field(100, ge=0)
    learn_from_anomalies: bool = False
    incident: IncidentConfig = IncidentConfig()
    trend: TrendConfig = TrendConfig()
    state: StateConfig = StateConfig()
    verbose: bool = False
    alerts: bool = False
    # Metrics: besides its mean, a histogram is scored on this quantile, estimated from its buckets.
    histogram_quantile: float = Field(0.99, gt=0, lt=1)

    def validate_config(self) -> list[str]:
        problems = _key_problems("key", self.key) + _key_problems("parent", self.parent)
        if self.target is not None:
            try:
                parse_target(self.target)
            except ValueError as error:
                problems.append(f"target: {error}")
        for index, model in enumerate(self.models or ()):
            needed = TARGET_ONLY.get(model.name)
            if needed is not None and self.target != needed:
                current = f'"{self.target}"' if self.target else "the default target"
                problems.append(f'models::{index}: {model.name} judges target "{needed}" only, not {current}')
        if self.models == []:
            problems.append("models: name at least one model")
        seen = set()
        for index, model in enumerate(self.models or ()):
            if model.model_id in seen:
                problems.append(f'models::{index}::id: "{model.model_id}" is used twice; give one of them another id')
            seen.add(model.model_id)
        return problems

    def validate_signal(self, signal: Signal) -> list[str]:
        """References that do not exist in ``signal`` (``key::1: "log.severity_text" does not exist in traces``)."""
        problems = []
        for index, text in enumerate(self.key or ()):
            problems += _signal_problem(f"key::{index}", parse_key, text, signal)
        for index, text in enumerate(self.parent or ()):
            problems += _signal_problem(f"parent::{index}", parse_key, text, signal)
        if self.parent and signal is Signal.METRICS:
            problems.append("parent: not available for metrics")
        if self.target is not None:
            problems += _signal_problem("target", parse_target, self.target, signal)
        if self.trend.limit is not None:
            unit = UNITS.get(self.signal_target(signal), "")
            problems += [f"trend::limit::{problem}" for problem in self.trend.limit.signal_problems(unit)]
        return problems

    def signal_key(self, signal: Signal) -> list[str]:
        """The key references in a pipeline of ``signal`` (the signal's default when not set)."""
        return self.key or DEFAULT_KEYS[signal]

    def signal_target(self, signal: Signal) -> str:
        return self.target or DEFAULT_TARGETS[signal]

    def target_models(self, target: Reference) -> list[ModelConfig]:
        """The models that judge ``target`` (the target's default when not set)."""
        if self.models is not None:
            return self.models
        return TARGET_MODELS.get(target.field, DEFAULT_MODELS)


def _key_problems(path: str, references: list[str] | None) -> list[str]:
    """Problems of a list of key references (None: not set, which is fine)."""
    if references is None:
        return []
    problems = [] if references else [f"{path}: must name at least one reference"]
    for index, text in enumerate(references):
        try:
            parse_key(text)
        except ValueError as error:
            problems.append(f"{path}::{index}: {error}")
    return problems


def _signal_problem(path: str, parse, text: str, signal: Signal) -> list[str]:
    try:
        reference = parse(text)
    except ValueError:
        return []  # validate_config() reports it
    try:
        check_signal(reference, signal)
    except ValueError as error:
        return [f"{path}: {error}"]
    return []


def half_life_weight(records: float) -> float:
    """The weight of a new value in an exponentially weighted mean whose old values count half after ``records``.

    >>> round(half_life_weight(1.0), 3), round(half_life_weight(2000.0), 6)
    (0.5, 0.000347)
    """
    return 1.0 - math.pow(0.5, 1.0 / records)
