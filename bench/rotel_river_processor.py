"""A rotel trace processor that scores every span with the anomaly processor's default models.

This is how one adds online ML to a collector today: a Python hook the
collector calls per batch, which walks the spans one by one, keeps a model
per key (service, span name) and appends the scores as attributes. It runs
the same models as otelml's default ``anomaly`` processor (each default
model's kernel on a one-key state, as the River classes do), with the same
residual scales, calibration and ``max`` combination, so that the bench
compares two ways of running the same models, not two different models.

rotel runs it in its embedded interpreter: start rotel with the virtualenv's
``bin`` first on PATH so that river, numpy and otelml import.
"""

import math

import numpy as np
from rotel_sdk.open_telemetry.common.v1 import AnyValue, KeyValue

from otelml.processors.anomaly.calibration import Calibration
from otelml.processors.anomaly.config import DEFAULT_MODELS, AnomalyConfig, half_life_weight
from otelml.processors.anomaly.kernels import DETECTOR, REGRESSOR, Rank, one_row_state
from otelml.processors.anomaly.models import build_model
from otelml.processors.anomaly.residuals import ResidualScale

CONFIG = AnomalyConfig()
KERNELS = [build_model(model.name, model.params).make_kernel() for model in DEFAULT_MODELS]
SCALE = ResidualScale(
    half_life_weight(CONFIG.residuals.half_life), CONFIG.residuals.clip, Calibration(CONFIG.calibration, CONFIG.warmup)
)
JUDGED = np.ones(1, dtype=bool)

_keys: dict = {}


class _KeyState:
    __slots__ = ("models", "scales", "seen")

    def __init__(self):
        self.models = [one_row_state(kernel) for kernel in KERNELS]
        self.scales = [None if kernel.kind == DETECTOR else one_row_state(SCALE) for kernel in KERNELS]
        self.seen = 0


def _score(state: _KeyState, when: float, y: float) -> tuple[float, float]:
    rank = Rank(1, np.array([y]), np.array([when]))
    score, expected = 0.0, y
    for kernel, model, scale in zip(KERNELS, state.models, state.scales):
        output = kernel.predict(model, rank)
        if scale is None:
            score = max(score, float(output[0]))
        elif output[0] == output[0]:
            deviation = y - output if kernel.kind == REGRESSOR else output
            score = max(score, float(SCALE.observe(scale, 1, deviation, JUDGED, plain=False).score[0]))
            if kernel.kind == REGRESSOR:
                expected = float(output[0])
    flagged = state.seen >= CONFIG.warmup and score >= CONFIG.threshold.static
    for kernel, model in zip(KERNELS, state.models):
        kernel.learn(model, rank, rank.y, np.array([not flagged]))
    state.seen += 1
    return score, expected


def process_spans(resource_spans):
    # An exception raised here would crash the rotel agent: never let one out.
    try:
        service = ""
        if resource_spans.resource is not None:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    service = attribute.value.value
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                key = (service, span.name)
                state = _keys.get(key)
                if state is None:
                    state = _keys[key] = _KeyState()
                duration_ms = max(span.end_time_unix_nano - span.start_time_unix_nano, 0) / 1e6
                score, expected = _score(state, span.end_time_unix_nano / 1e9, math.log1p(duration_ms))
                anomalous = state.seen > CONFIG.warmup and score >= CONFIG.threshold.static
                span.attributes.append(KeyValue("otelml.score", AnyValue(score)))
                span.attributes.append(KeyValue("otelml.anomaly", AnyValue(anomalous)))
                span.attributes.append(KeyValue("otelml.expected", AnyValue(math.expm1(expected))))
    except Exception:
        pass
