"""The one scoring engine: every model, bad values, divergence, calibration, incidents, batch-split invariance."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from river.checks import check_estimator, yield_checks

from otelml.conventions import ANOMALY, EXPECTED, INCIDENT_ID, INCIDENT_OPEN, SCORE
from otelml.pdata import Signal
from otelml.processors.anomaly.models import (
    MODELS,
    TARGET_ONLY,
    Autoregression,
    Burst,
    EwmMean,
    LevelShift,
    Lull,
    Range,
    SeasonalProfile,
)
from otelml.synthetic import BASE_TIME_NS, make_trace_request
from tests.anomaly.support import START, SpanSpec, attribute, logs, make_processor, outputs, records_of, traces
from tests.anomaly.test_scoring import steady


def readings(values: list[float], device: str = "sensor-1", start: float = START, step: float = 60.0) -> list[dict]:
    return [
        {"when": start + i * step, "resource": {"device.id": device}, "attributes": {"temperature": value}}
        for i, value in enumerate(values)
    ]


def iot_processor(**settings):
    return make_processor(Signal.LOGS, key=["resource.device.id"], target="attributes.temperature", **settings)


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(TARGET_ONLY)))
async def test_every_registered_model_scores_a_level_shift(name):
    processor = iot_processor(models=[name], warmup=50, verbose=True)
    rng = random.Random(3)
    history = await _run(processor, logs(readings([20.0 + rng.gauss(0, 0.3) for _ in range(400)])))
    calm = outputs(history, f"otelml.score.{name}")[100:]
    shifted = await _run(processor, logs(readings([30.0 + rng.gauss(0, 0.3) for _ in range(5)], start=START + 400 * 60)))
    model_scores = outputs(shifted, f"otelml.score.{name}")
    # Each model's own score of the shift stands well above what it gave the calm stream on average.
    assert np.mean(model_scores) > np.mean(calm) + 0.2, (name, np.mean(calm), model_scores)
    assert all(0.0 <= score <= 1.0 for score in outputs(shifted, SCORE))


@pytest.mark.parametrize("model", [EwmMean(), SeasonalProfile(), Autoregression()], ids=lambda m: type(m).__name__)
def test_built_in_models_pass_rivers_estimator_checks(model):
    check_estimator(model)


def test_autoregression_is_rivers_linear_regression_on_the_keys_past():
    from river import linear_model, preprocessing

    ours, theirs = Autoregression(after=1), preprocessing.StandardScaler() | linear_model.LinearRegression()
    rng = random.Random(3)
    lags, means = [], [None, None]
    for i in range(2000):
        y = 20 + 5 * math.sin(i / 30) + rng.gauss(0, 1) + (30 if i % 500 == 0 else 0)
        x = {f"lag_{n + 1}": value for n, value in enumerate(lags)}
        x.update({f"ewm_{alpha:g}": mean for alpha, mean in zip((0.3, 0.03), means) if mean is not None})
        if i:
            assert ours.predict_one({}) == pytest.approx(theirs.predict_one(x), abs=1e-9)
        ours.learn_one({}, y)
        theirs.learn_one(x, y)
        lags = [y, *lags[:1]]
        means = [y if mean is None else mean + alpha * (y - mean) for alpha, mean in zip((0.3, 0.03), means)]


def test_seasonal_profile_passes_the_dataset_checks_on_a_stream_with_times():
    # River's regression dataset carries no record time, so there SeasonalProfile never predicts: run the
    # same dataset checks again on a stream whose records have one.
    rng = random.Random(1)
    stream = [({"time": START + i * 1800.0}, 20.0 + 5 * math.sin(i / 8) + rng.gauss(0, 1)) for i in range(300)]
    model = SeasonalProfile()
    for check in yield_checks(model):
        if hasattr(check, "func"):
            check.func(model.clone(), dataset=stream)
    for x, y in stream[:200]:
        model.learn_one(x, y)
    assert model.predict_one(stream[200][0]) == pytest.approx(20.0, abs=6.0)


@pytest.mark.parametrize("model", [LevelShift(), Range(after=20)], ids=lambda m: type(m).__name__)
def test_built_in_detectors_pass_rivers_checks_on_a_stream_with_a_target(model):
    # check_estimator runs an anomaly detector's dataset checks on River's CreditCard data, which must be
    # downloaded and has no "target" for these detectors to read: run the same checks as check_estimator does,
    # those with a dataset on a labelled stream of readings with level shifts.
    rng = random.Random(2)
    stream = []
    for i in range(400):
        shifted = 150 <= i < 170 or 300 <= i < 320
        stream.append(({"target": (35.0 if shifted else 20.0) + rng.gauss(0, 0.5)}, shifted))
    for check in yield_checks(model):
        if hasattr(check, "func"):
            check.func(model.clone(), dataset=stream)
        else:
            check(model.clone())


@pytest.mark.parametrize("model", [Burst(), Lull()], ids=lambda m: type(m).__name__)
def test_rate_detectors_pass_rivers_checks_on_a_stream_with_times(model):
    # The same checks on records with times (all the rate detectors read): one a second at random, with a
    # minute at ten a second and five minutes at one in ten seconds; the change the detector judges is labelled.
    rng = random.Random(4)
    stream, when = [], START
    while when < START + 1500.0:
        burst, lull = 600 <= when - START < 660, 900 <= when - START < 1200
        when += rng.expovariate(10.0 if burst else 0.1 if lull else 1.0)
        stream.append(({"time": when, "target": 1.0}, burst if isinstance(model, Burst) else lull))
    for check in yield_checks(model):
        if hasattr(check, "func"):
            check.func(model.clone(), dataset=stream)
        else:
            check(model.clone())
    changed, calm = [], []
    for x, labelled in stream:
        score = model.score_one(x)
        model.learn_one(x)
        # Calm: a minute or more from either change (a burst's count, a lull's span, takes time to pass).
        since = x["time"] - START
        if labelled:
            changed.append(score)
        elif 100 < since < 540 or 720 < since < 840 or since > 1260:
            calm.append(score)
    assert max(changed) > 0.65 > max(calm)


@pytest.mark.integration  # seconds of scoring per value
@pytest.mark.parametrize("glitch", [1e9, 3.4e38, 1e308])
async def test_one_huge_value_does_not_blind_a_key(glitch):
    processor = iot_processor()
    rng = random.Random(5)
    values = [20.0 + rng.gauss(0, 0.3) for _ in range(100)] + [glitch] + [20.0 + rng.gauss(0, 0.3) for _ in range(10_000)]
    history = await _run(processor, logs(readings(values)))
    jump = await _run(processor, logs(readings([30.0] * 5, start=START + len(values) * 60)))
    assert any(outputs(jump, ANOMALY)), outputs(jump, SCORE)
    for batch in (history, jump):
        for key in (SCORE, "otelml.forecast"):
            assert all(math.isfinite(value) for value in outputs(batch, key))
        assert all(value is None or math.isfinite(value) for value in outputs(batch, EXPECTED))
    assert outputs(jump, EXPECTED)[0] == pytest.approx(20.0, abs=0.5)


@pytest.mark.integration  # seconds of scoring
async def test_calibration_flags_a_spike_in_quiet_and_in_noisy_series_but_not_the_noise():
    # A warmup long enough for the noisy key to show its bumps (one record in fifty) a few dozen times.
    processor = iot_processor(warmup=1000)
    rng = random.Random(11)
    quiet = [20.0 + rng.gauss(0, 0.1) for _ in range(3000)]
    # Noisy: heavy-tailed noise, with a bump of up to 8 deviations now and then.
    noisy = [50.0 + rng.gauss(0, 1.0) * (8.0 if rng.random() < 0.02 else 1.0) for _ in range(3000)]
    history = await _run(processor, logs(readings(quiet) + readings(noisy, device="sensor-2")))
    flags = outputs(history, ANOMALY)
    assert sum(flags[:3000]) == 0 and sum(flags[3000:]) <= 3, (sum(flags[:3000]), sum(flags[3000:]))
    # Uncalibrated, the same threshold flags the noisy key's bumps again and again.
    plain = iot_processor(warmup=1000, calibration={"enabled": False})
    flags = outputs(await _run(plain, logs(readings(quiet) + readings(noisy, device="sensor-2"))), ANOMALY)
    assert sum(flags[3000:]) > 10
    later = START + 3000 * 60
    spikes = readings([25.0] * 4, start=later) + readings([100.0] * 4, device="sensor-2", start=later)
    batch = await _run(processor, logs(spikes))
    flags = outputs(batch, ANOMALY)
    assert any(flags[:4]) and any(flags[4:]), outputs(batch, SCORE)


async def test_a_diverging_river_model_is_reset_and_counted():
    processor = iot_processor(models=["linear_regression"], features={"attributes": ["load"]})
    values = [
        {
            "when": START + i * 60,
            "resource": {"device.id": "sensor-1"},
            "attributes": {"temperature": 20.0 + (i % 5) * 0.1, "load": 1e300 if i == 150 else 1.0 + (i % 3)},
        }
        for i in range(300)
    ]
    batch = await _run(processor, logs(values))
    assert all(0.0 <= score <= 1.0 for score in outputs(batch, SCORE))
    resets = processor.settings.telemetry.value(
        "otelml_anomaly_model_resets_total", processor="anomaly", model="linear_regression"
    )
    assert resets >= 1
    [model] = processor.store.arrays["model0.model"][list(processor.store.keys.values())]
    assert all(math.isfinite(weight) for weight in model["LinearRegression"].weights.values())
    # The fresh model learned the readings after the reset: it predicts them again.
    assert outputs(batch, EXPECTED)[-1] == pytest.approx(20.2, abs=1.0)


async def test_incidents_open_once_per_burst_and_close_after_the_quiet_period():
    processor = make_processor(warmup=50, incident={"quiet_records": 5, "quiet": "30s"})
    stream = steady(3000)
    for start in (START + 3000, START + 3200):
        stream += [SpanSpec("checkout", "GET /cart", start + i, 3000.0) for i in range(6)]
        stream += steady(194, start=start + 6, seed=int(start))
    batch = await _run(processor, traces(stream))
    records = records_of(batch)
    opens = [i for i, r in enumerate(records) if attribute(r, INCIDENT_OPEN)]
    assert len(opens) == 2 and 3000 <= opens[0] < 3006 and 3200 <= opens[1] < 3206
    ids = [attribute(r, INCIDENT_ID) for r in records]
    for first in opens:
        incident = ids[first]
        members = [i for i, value in enumerate(ids) if value == incident]
        assert members == list(range(first, members[-1] + 1)), "ids on every record from the opening on"
        assert len(incident) == 16 and all(ids[i] is None for i in range(members[-1] + 1, members[-1] + 20))
        # Closed by the record 30 s (of record time, one span a second) after the last flagged one.
        last_flagged = max(i for i in members if attribute(records[i], ANOMALY))
        assert members[-1] == last_flagged + 29
    assert ids[opens[0]] != ids[opens[1]]
    assert processor.settings.telemetry.value("otelml_anomaly_incidents_total", processor="anomaly") == 2


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"warmup": 5, "verbose": True, "combine": "mean", "trend": {"window": 8, "horizon": "20s"}, "alerts": True},
        {
            "warmup": 5,
            "combine": "weighted",
            "learn_from_anomalies": True,
            "models": [
                {"name": "seasonal_profile", "params": {"period": "week", "alpha": 0.3}, "weight": 3},
                {"name": "ewm_mean", "params": {"alpha": 0.05}},
                "holt_winters",
            ],
        },
        {"warmup": 5, "combine": "vote", "threshold": {"adaptive": {"quantile": 0.9, "window": 50}}, "verbose": True},
        {"warmup": 3, "state": {"max_keys": 5, "ttl": "3s"}, "models": ["linear_regression", "half_space_trees"]},
    ],
    ids=["default", "verbose", "weighted-river", "adaptive-vote", "evicting-river"],
)
async def test_scores_do_not_depend_on_how_the_stream_is_batched(settings):
    def stream(sizes):
        requests = [
            make_trace_request(
                spans=600, services=3, operations=3, seed=7, anomaly_rate=0.01, start_ns=BASE_TIME_NS, spacing_ns=10**6
            )
        ]
        spans = [(rs.resource, s) for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
        batches, start = [], 0
        for size in sizes:
            batches.append(_request_of(spans[start : start + size]))
            start += size
        return batches

    results = []
    for sizes in ([600], [1, 7, 300, 40, 252], [37] * 16 + [8]):
        processor = make_processor(**settings)
        scored = []
        for batch in stream(sizes):
            await _run(processor, batch)
            scored += [
                {
                    kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
                    for kv in span.attributes
                    if kv.key.startswith("otelml.")
                }
                for span in records_of(batch)
            ]
        results.append(scored)
    assert results[0] == results[1] == results[2]


def _request_of(spans):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    for resource, span in spans:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.CopyFrom(resource)
        resource_spans.scope_spans.add().spans.add().CopyFrom(span)
    return request


async def test_a_span_ending_before_it_starts_is_counted_unscored():
    processor = make_processor()
    batch = traces(steady(3))
    span = records_of(batch)[1]
    span.end_time_unix_nano = span.start_time_unix_nano - 1
    await _run(processor, batch)
    assert [score is None for score in outputs(batch)] == [False, True, False]
    assert processor.settings.telemetry.value("otelml_anomaly_unscored_records_total", processor="anomaly") == 1


async def _run(processor, batch):
    await processor.consume(batch)
    return batch
