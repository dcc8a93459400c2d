"""A rotel trace processor that scores every span with the anomaly processor's default River models.

This is how one adds online ML to a collector today: a Python hook the
collector calls per batch, which walks the spans one by one, keeps a model
per key (service, span name) and appends the scores as attributes. It uses
the same models (``seasonal_profile`` and ``ewm_mean``, as River
estimators), the same residual scale and the same ``max`` combination as
otelml's default ``anomaly`` processor (without its calibration), so that
the bench compares the two ways of running the same models, not two
different models.

rotel runs it in its embedded interpreter: start rotel with the virtualenv's
``bin`` first on PATH so that river, numpy and otelml import.
"""

import math

import numpy as np
from rotel_sdk.open_telemetry.common.v1 import AnyValue, KeyValue

from otelml.processors.anomaly.models import MODELS
from otelml.processors.anomaly.residuals import MOMENTS, ResidualScale

MODEL_NAMES = ("seasonal_profile", "ewm_mean")
THRESHOLD = 0.6
WARMUP = 100
SCALE = ResidualScale(alpha=1 / 2000, clip=5.0)
JUDGED = np.ones(1, dtype=bool)

_keys: dict = {}


class _KeyState:
    __slots__ = ("models", "scales", "seen")

    def __init__(self):
        self.models = [MODELS[name]() for name in MODEL_NAMES]
        self.scales = [{name: np.zeros(1) for name in MOMENTS} for _ in MODEL_NAMES]
        self.seen = 0


def _score(state: _KeyState, x: dict, y: float) -> tuple[float, float]:
    scores, expected = [], y
    for model, scale in zip(state.models, state.scales):
        prediction = model.predict_one(x)
        if prediction == prediction:
            scores.append(float(SCALE.observe(scale, 1, np.array([y - prediction]), JUDGED)[0]))
            expected = prediction
        model.learn_one(x, y)
    state.seen += 1
    return (max(scores) if scores else 0.0), expected


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
                score, expected = _score(state, {"time": span.end_time_unix_nano / 1e9}, math.log1p(duration_ms))
                anomalous = state.seen > WARMUP and score >= THRESHOLD
                span.attributes.append(KeyValue("otelml.score", AnyValue(score)))
                span.attributes.append(KeyValue("otelml.anomaly", AnyValue(anomalous)))
                span.attributes.append(KeyValue("otelml.expected", AnyValue(math.expm1(expected))))
    except Exception:
        pass
