"""What the processor flags, per key, on synthetic streams."""

from __future__ import annotations

import math
import random

import pytest

from otelml.conventions import ANOMALY, EXPECTED, FORECAST, PREDICTED, SCORE
from otelml.pdata import Signal
from otelml.synthetic import BASE_TIME_NS, make_trace_request
from tests.anomaly.support import START, SpanSpec, attribute, logs, make_processor, outputs, records_of, traces

WARMUP = 100


def steady(
    count: int,
    start: float = START,
    service: str = "checkout",
    name: str = "GET /cart",
    level_ms: float = 50.0,
    seed: int = 1,
    step: float = 1.0,
) -> list[SpanSpec]:
    rng = random.Random(seed)
    return [SpanSpec(service, name, start + i * step, level_ms * rng.lognormvariate(0, 0.1)) for i in range(count)]


async def run(processor, batch):
    await processor.consume(batch)
    return batch


async def test_every_record_gets_the_output_attributes():
    processor = make_processor(verbose=True)
    batch = await run(processor, traces(steady(3)))
    keys = [kv.key for kv in records_of(batch)[-1].attributes]
    assert keys == [
        "otelml.score",
        "otelml.anomaly",
        "otelml.expected",
        "otelml.forecast",
        "otelml.trend.slope",
        "otelml.incident.predicted",
        "otelml.score.raw",
        "otelml.score.seasonal_profile",
        "otelml.score.ewm_mean",
        "otelml.score.level_shift",
        "otelml.score.range",
        "otelml.score.autoregression",
    ]


async def test_level_shift_is_flagged_within_a_few_records_and_steady_stream_is_not():
    processor = make_processor(warmup=WARMUP)
    history = await run(processor, traces(steady(600)))
    assert not any(outputs(history, ANOMALY)[WARMUP:]), "a steady stream must not be flagged after warmup"
    shifted = steady(10, start=START + 600, level_ms=400.0, seed=2)
    after = await run(processor, traces(shifted))
    flags = outputs(after, ANOMALY)
    assert flags.index(True) < 3
    counted = processor.settings.telemetry.value("otelml_anomaly_anomalies_total", processor="anomaly")
    assert counted == sum(flags) > 0
    assert outputs(after, EXPECTED)[0] == pytest.approx(50.0, rel=0.1), "expected stays the learned level, in ms"


@pytest.mark.parametrize("seed", range(3))
async def test_trend_forecast_crosses_the_threshold_before_a_slow_ramp_does(seed):
    # The residual scale keeps learning, so a ramp tops out near z = 6 (score ~0.65): threshold 0.6. Without
    # level_shift, which flags such a ramp itself within a few records, this is the trend's forecast alone.
    processor = make_processor(
        warmup=WARMUP, trend={"window": 60, "horizon": "60s"}, threshold=0.6, models=["seasonal_profile", "ewm_mean"]
    )
    await run(processor, traces(steady(3000, seed=seed)))
    rng = random.Random(seed + 10)
    ramp = [
        SpanSpec("checkout", "GET /cart", START + 3000 + i, 50.0 * math.exp(0.01 * i) * rng.lognormvariate(0, 0.1))
        for i in range(300)
    ]
    batch = await run(processor, traces(ramp))
    first_predicted = outputs(batch, PREDICTED).index(True)
    first_anomaly = outputs(batch, ANOMALY).index(True)
    assert first_predicted < first_anomaly
    assert outputs(batch, SCORE)[first_predicted] < 0.6
    assert outputs(batch, FORECAST)[first_predicted] >= 0.6


async def test_services_never_share_a_model():
    processor = make_processor(warmup=WARMUP)
    # The same span name at two services, one ten times slower: both are normal for themselves.
    fast = steady(400, service="cart", name="GET /item", level_ms=20.0, seed=4)
    slow = steady(400, service="search", name="GET /item", level_ms=200.0, seed=5)
    mixed = [span for pair in zip(fast, slow) for span in pair]
    batch = await run(processor, traces(mixed))
    assert len(processor.store.keys) == 2
    assert not any(outputs(batch, ANOMALY))
    assert processor.store.keys[("cart", "GET /item")] != processor.store.keys[("search", "GET /item")]
    # Each learned its own level.
    after = await run(
        processor, traces([SpanSpec("cart", "GET /item", START + 400, 20.0), SpanSpec("search", "GET /item", START + 400, 200.0)])
    )
    assert outputs(after, EXPECTED) == [pytest.approx(20.0, rel=0.1), pytest.approx(200.0, rel=0.1)]


@pytest.mark.parametrize("seed", range(3))
async def test_logs_keyed_by_client_address_flag_the_scanning_client(seed):
    processor = make_processor(Signal.LOGS, key=["attributes.client.address"], target="rate", warmup=50)
    clients = [f"10.0.0.{n}" for n in range(1, 6)]
    rng = random.Random(seed)
    normal = []
    for client in clients:
        when = START
        for _ in range(1000):
            when += rng.expovariate(1.0)  # about one request per second
            normal.append({"when": when, "attributes": {"client.address": client}})
    normal.sort(key=lambda r: r["when"])
    history = await run(processor, logs(normal, resource={"service.name": "gateway"}))
    assert not any(outputs(history, ANOMALY)[500:])
    scan_start = normal[-1]["when"]
    # One client starts probing paths at 500 requests per second; another goes on as before.
    scan = [
        {"when": scan_start + i * 0.002, "attributes": {"client.address": "10.0.0.3", "url.path": f"/admin{i}"}}
        for i in range(200)
    ]
    last_seen = max(r["when"] for r in normal if r["attributes"]["client.address"] == "10.0.0.1")
    others = [{"when": last_seen + i, "attributes": {"client.address": "10.0.0.1"}} for i in range(1, 6)]
    batch = await run(processor, logs(scan + others, resource={"service.name": "gateway"}))
    flagged = {attribute(r, "client.address") for r in records_of(batch) if attribute(r, ANOMALY)}
    assert flagged == {"10.0.0.3"}
    assert len(processor.store.keys) == len(clients)


async def test_iot_temperature_keyed_by_device():
    processor = make_processor(Signal.LOGS, key=["resource.device.id"], target="attributes.temperature", warmup=50)
    rng = random.Random(7)
    readings = [
        {"when": START + i * 60, "resource": {"device.id": device}, "attributes": {"temperature": base + rng.gauss(0, 0.2)}}
        for i in range(300)
        for device, base in (("sensor-1", 21.0), ("sensor-2", 35.0))
    ]
    history = await run(processor, logs(readings))
    assert not any(outputs(history, ANOMALY)[100:])
    overheating = [
        {"when": START + 300 * 60, "resource": {"device.id": "sensor-1"}, "attributes": {"temperature": 29.0}},
        {"when": START + 300 * 60, "resource": {"device.id": "sensor-2"}, "attributes": {"temperature": 35.1}},
    ]
    batch = await run(processor, logs(overheating))
    assert outputs(batch, ANOMALY) == [True, False]
    assert outputs(batch, EXPECTED)[0] == pytest.approx(21.0, abs=0.5)


async def test_records_without_a_target_pass_unscored_and_are_counted():
    processor = make_processor(Signal.LOGS, target="attributes.temperature")
    batch = await run(processor, logs([{"when": START, "attributes": {"humidity": 40.0}}]))
    assert outputs(batch) == [None]
    assert processor.settings.telemetry.value("otelml_anomaly_unscored_records_total", processor="anomaly") == 1


async def test_flagged_records_are_not_learned_by_default():
    spike = SpanSpec("checkout", "GET /cart", START + 600, 5000.0)
    means = {}
    for learn in (False, True):
        processor = make_processor(warmup=WARMUP, learn_from_anomalies=learn)
        await run(processor, traces(steady(600) + [spike]))
        after = await run(processor, traces([SpanSpec("checkout", "GET /cart", START + 601, 50.0)]))
        means[learn] = outputs(after, EXPECTED)[0]
    assert means[True] > means[False]


async def test_rescoring_replaces_earlier_output_attributes():
    processor = make_processor()
    batch = await run(processor, traces(steady(5)))
    again = make_processor()
    await again.consume(batch)
    keys = [kv.key for kv in records_of(batch)[-1].attributes]
    assert keys.count("otelml.score") == 1


async def test_a_diverging_river_model_does_not_stop_scoring():
    # Plain SGD on these features (rates of a thousand spans per second) overflows after a while.
    processor = make_processor(models=["linear_regression"])
    for number in range(2):
        batch = make_trace_request(
            spans=2000, services=2, operations=2, seed=number, start_ns=BASE_TIME_NS + number * 2000 * 1_000_000
        )
        await run(processor, batch)
        scores = outputs(batch)
        assert len(scores) == 2000 and all(0.0 <= score <= 1.0 for score in scores)
    assert None in outputs(batch, EXPECTED), "the model diverged: some records have no expected value"
