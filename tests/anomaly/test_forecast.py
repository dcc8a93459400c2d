"""Predicted incidents: the target's own trend against a limit, the score's trend without one, never inside an incident."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.connectors.anomaly_alerts.connector import AnomalyAlertsConnector
from otelml.conventions import ALERT_NAME, ANOMALY, CROSSING_SECONDS, INCIDENT_ID, LIMIT, PREDICTED, SCORE, TARGET_FORECAST
from otelml.pdata import Signal
from otelml.telemetry import Telemetry
from tests.anomaly.support import START, SpanSpec, attribute, logs, make_processor, records_of, traces
from tests.anomaly.test_scoring import steady
from tests.conftest import Collect, logs_of

IOT = yaml.safe_load((Path(__file__).resolve().parents[2] / "processors/anomaly/testdata/config.yaml").read_text())["processors"][
    "anomaly/iot"
]
EVERY = 10.0  # seconds between readings


def readings(levels: list[float], start: float = START, device: str = "sensor-1") -> list[dict]:
    return [
        {"when": start + i * EVERY, "resource": {"device.id": device}, "attributes": {"temperature": level}}
        for i, level in enumerate(levels)
    ]


def creeping(
    rate_per_second: float, start_level: float, count: int, noise: float, seed: int = 1, history: int = 200
) -> tuple[list[float], int]:
    """``history`` steady readings at ``start_level``, then a ramp of ``rate_per_second``; and where the ramp starts."""
    rng = random.Random(seed)
    levels = [start_level + rng.gauss(0, noise) for _ in range(history)]
    levels += [start_level + rate_per_second * EVERY * i + rng.gauss(0, noise) for i in range(1, count + 1)]
    return levels, history


async def scored(processor, batch):
    await processor.consume(batch)
    return records_of(batch)


@pytest.mark.parametrize(("seed", "noise"), [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.2)])
async def test_a_creeping_temperature_is_predicted_before_it_reaches_the_limit_with_the_time_it_takes(seed, noise):
    """The shipped IoT example: 4 °C in 200 readings 10 s apart, from 76 °C to its limit of 80."""
    processor = make_processor(Signal.LOGS, **IOT)
    levels, ramp_start = creeping(0.002, 76.0, 210, noise=noise, seed=seed)
    records = await scored(processor, logs(readings(levels)))
    crossing = START + (ramp_start - 1) * EVERY + 2000.0
    predicted = [r for r in records if attribute(r, PREDICTED)]
    assert predicted, "the ramp is predicted"
    first_time = predicted[0].time_unix_nano / 1e9
    assert first_time < crossing - 300, "minutes before it crosses"
    # The first prediction is what the alert says; later ones, closer to the crossing, are noisier in relative terms.
    for record in [r for r in predicted if crossing - r.time_unix_nano / 1e9 >= 300]:
        truth = crossing - record.time_unix_nano / 1e9
        assert attribute(record, CROSSING_SECONDS) == pytest.approx(truth, rel=0.25)
    assert all(attribute(r, LIMIT) == 80.0 and attribute(r, TARGET_FORECAST) > 80.0 for r in predicted)
    assert not any(attribute(r, PREDICTED) for r in records[:ramp_start]), "no prediction while it is steady"


async def test_a_falling_reading_is_predicted_against_a_lower_limit():
    processor = make_processor(Signal.LOGS, **{**IOT, "trend": {"window": 60, "horizon": "15m", "limit": {"below": 15}}})
    levels, ramp_start = creeping(-0.002, 19.0, 210, noise=0.05)
    records = await scored(processor, logs(readings(levels)))
    predicted = [r for r in records if attribute(r, PREDICTED)]
    assert predicted and all(attribute(r, LIMIT) == 15.0 for r in predicted)
    crossing = START + (ramp_start - 1) * EVERY + 2000.0
    assert attribute(predicted[0], CROSSING_SECONDS) == pytest.approx(crossing - predicted[0].time_unix_nano / 1e9, rel=0.25)


@pytest.mark.parametrize("noise", [0.0, 0.5])
async def test_a_flat_reading_near_its_limit_is_never_predicted(noise):
    processor = make_processor(Signal.LOGS, **IOT)
    rng = random.Random(3)
    records = await scored(processor, logs(readings([78.0 + rng.gauss(0, noise) for _ in range(400)])))
    assert not any(attribute(r, PREDICTED) for r in records)


async def test_a_crossing_beyond_the_reach_of_the_window_is_not_yet_predicted():
    """60 readings 10 s apart reach back 590 s: a crossing 20 min ahead is not predicted, one 5 min ahead is."""
    processor = make_processor(Signal.LOGS, **{**IOT, "trend": {"window": 60, "horizon": "1h", "limit": {"above": 80}}})
    levels, ramp_start = creeping(0.005, 70.0, 400, noise=0.0)
    records = await scored(processor, logs(readings(levels)))
    seconds = [attribute(r, CROSSING_SECONDS) for r in records if attribute(r, PREDICTED)]
    assert seconds and max(seconds) <= 590.0


async def test_a_latency_slo_in_milliseconds():
    processor = make_processor(warmup=50, trend={"window": 60, "horizon": "10m", "limit": {"above": "500ms"}}, alerts=True)
    slowing = [SpanSpec("checkout", "GET /cart", START + i, 100.0 + 2.0 * i) for i in range(150)]
    records = await scored(processor, traces(slowing))
    predicted = [r for r in records if attribute(r, PREDICTED)]
    assert predicted and attribute(predicted[0], LIMIT) == 500.0
    reaches_500_at = START + 200
    assert attribute(predicted[0], CROSSING_SECONDS) == pytest.approx(
        reaches_500_at - predicted[0].end_time_unix_nano / 1e9, rel=0.25
    )


async def test_no_prediction_while_the_key_has_an_incident_open():
    processor = make_processor(warmup=100, trend={"window": 60, "horizon": "60s"})
    await scored(processor, traces(steady(1000)))
    spike_then_ramp = [SpanSpec("checkout", "GET /cart", START + 1000, 3000.0)]
    spike_then_ramp += [SpanSpec("checkout", "GET /cart", START + 1001 + i, 50.0 * 1.01**i) for i in range(200)]
    records = await scored(processor, traces(spike_then_ramp))
    assert attribute(records[0], ANOMALY)
    in_incident = [r for r in records if attribute(r, INCIDENT_ID)]
    assert len(in_incident) > 1
    assert not any(attribute(r, PREDICTED) for r in in_incident)


async def test_a_prediction_from_the_score_trend_says_when_the_score_gets_there():
    # Without level_shift, which flags such a ramp itself within a few records (and a key with an incident
    # open gets no prediction), so that the score's trend is what sees it coming.
    processor = make_processor(
        warmup=100, trend={"window": 60, "horizon": "60s"}, alerts=True, models=["seasonal_profile", "ewm_mean"]
    )
    await scored(processor, traces(steady(2000, seed=5)))
    rng = random.Random(6)
    ramp = [SpanSpec("checkout", "GET /cart", START + 2000 + i, 50.0 * 1.01**i * rng.lognormvariate(0, 0.1)) for i in range(300)]
    records = await scored(processor, traces(ramp))
    predicted = [r for r in records if attribute(r, PREDICTED)]
    assert predicted
    threshold = processor.config.threshold.static
    assert all(0 < attribute(r, CROSSING_SECONDS) <= 60.0 and attribute(r, SCORE) < threshold for r in predicted)
    assert all(attribute(r, LIMIT) is None for r in predicted)


async def test_the_creeping_temperature_gives_one_predicted_alert_in_its_units():
    processor = make_processor(Signal.LOGS, **IOT)
    levels, _ = creeping(0.002, 76.0, 210, noise=0.1)
    batch = logs(readings(levels))
    await processor.consume(batch)
    sink = Collect()
    connector = AnomalyAlertsConnector(
        CreateSettings(ComponentID("anomaly_alerts"), Kind.CONNECTOR, Telemetry()), AnomalyAlertsConfig(), {Signal.LOGS: sink}
    )
    await connector.consume(batch)
    alerts = [a for a in logs_of(sink.batches) if attribute(a, ALERT_NAME) == "PredictedIncident"]
    assert len(alerts) == 1
    text = alerts[0].body.string_value
    assert text.startswith("predicted in device.id=sensor-1: attributes.temperature reaches 80 in about ")
    assert alerts[0].severity_text == "warning"
