"""The burst detector: a known message (or any key) logging far more than usual, flagged within seconds."""

from __future__ import annotations

import random

import pytest

from otelml.pdata import Signal
from otelml.processors.anomaly.config import TARGET_MODELS, AnomalyConfig
from otelml.references import RATE
from tests.anomaly.support import START, attribute, logs, make_processor, records_of

RATE_DEFAULTS = [model.name for model in TARGET_MODELS[RATE]]


def arrivals(rng: random.Random, rate, start: float, end: float) -> list[float]:
    """Record times of a Poisson stream whose rate (per second) is ``rate(time since start)``."""
    times, when = [], start
    while True:
        when += rng.expovariate(rate(when - start))
        if when >= end:
            return times
        times.append(when)


def template_logs(times: list[float], template: str = "pool", service: str = "auth"):
    return logs([{"when": when, "attributes": {"log.record.template.id": template}} for when in times], {"service.name": service})


def templates_processor(models, **settings):
    return make_processor(
        Signal.LOGS,
        key=["resource.service.name", "attributes.log.record.template.id"],
        target="rate",
        warmup=50,
        models=models,
        verbose=True,
        **settings,
    )


async def flags_at(processor, times: list[float]) -> list[tuple[float, bool]]:
    flags = []
    for start in range(0, len(times), 50):
        batch = template_logs(times[start : start + 50])
        await processor.consume(batch)
        flags += [(when, bool(attribute(record, "otelml.anomaly"))) for when, record in zip(times[start:], records_of(batch))]
    return flags


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("models", [["burst"], [*RATE_DEFAULTS, "burst"]], ids=["alone", "with the rate's defaults"])
async def test_a_tenfold_burst_of_a_known_message_is_flagged_within_seconds(seed, models):
    # The demo's error burst: a message of one request in twenty (1.25 a second) comes with every failure (15 a second).
    burst_starts = START + 120.0
    rng = random.Random(seed)
    times = arrivals(rng, lambda t: 15.0 if 120.0 <= t < 125.0 else 1.25, START, START + 140.0)
    flags = await flags_at(templates_processor(models), times)
    assert not any(flagged for when, flagged in flags if when < burst_starts), "nothing before the burst"
    first = next(when for when, flagged in flags if flagged)
    assert burst_starts < first < burst_starts + 2.5


async def flagged_by(models: list[str], model: str, times: list[float]) -> list:
    """The records of one message logged at ``times`` that ``model`` alone scored past the default threshold, with alert details."""
    processor = templates_processor(models, alerts=True)
    flagged = []
    for start in range(0, len(times), 50):
        batch = template_logs(times[start : start + 50])
        await processor.consume(batch)
        flagged += [record for record in records_of(batch) if (attribute(record, f"otelml.score.{model}") or 0.0) >= 0.65]
    return flagged


async def test_an_alert_on_a_burst_names_the_rate_it_rose_to_and_the_usual_one():
    # The rate over about the key's last ten seconds against its usual one, in records per second.
    times = arrivals(random.Random(1), lambda t: 15.0 if 120.0 <= t < 125.0 else 1.25, START, START + 140.0)
    flagged = await flagged_by(["burst"], "burst", times)
    assert flagged
    for record in flagged:
        usual = attribute(record, "otelml.level.usual")
        assert usual == pytest.approx(1.25, rel=0.3)
        assert 2 * usual < attribute(record, "otelml.level.recent") < 15.0


async def test_a_steady_stream_is_not_a_burst_and_a_lasting_change_of_rate_becomes_usual():
    rng = random.Random(4)
    # An hour at two a second, then the rate triples for good.
    times = arrivals(rng, lambda t: 2.0 if t < 3600.0 else 6.0, START, START + 3 * 3600.0)
    flags = await flags_at(templates_processor(["burst"]), times)
    assert not any(flagged for when, flagged in flags if when < START + 3600.0)
    after = [when - START - 3600.0 for when, flagged in flags if flagged]
    assert after and after[0] < 10.0, "the change itself is flagged at once"
    assert max(after) < 600.0, "and it is usual within minutes"


async def newcomer_beside_a_group(models: list[str], times: list[float]) -> list:
    """The scored records of a never-seen client at ``times`` (after START + 600), once its service's group is ready.

    Fifty clients of ``checkout`` at ten requests a second in all for ten minutes come first; the newcomer
    borrows their group's state (``parent: [resource.service.name]``). Its first record has no rate and is
    left out.
    """
    processor = make_processor(
        Signal.LOGS,
        key=["resource.service.name", "attributes.client.address"],
        parent=["resource.service.name"],
        target="rate",
        warmup=50,
        models=models,
        verbose=True,
    )
    rng = random.Random(5)
    clients = [
        {"when": when, "attributes": {"client.address": f"10.0.0.{rng.randint(1, 50)}"}}
        for when in arrivals(rng, lambda t: 10.0, START, START + 600.0)
    ]
    await processor.consume(logs(clients, {"service.name": "checkout"}))
    batch = logs([{"when": when, "attributes": {"client.address": "10.9.9.9"}} for when in times], {"service.name": "checkout"})
    await processor.consume(batch)
    return records_of(batch)[1:]


async def test_a_key_borrowing_its_parents_state_counts_its_own_records():
    # Five times a second: far above what the group counts for one key, and what a scan looks like, which
    # the rate's regressors judge from the borrowed baseline; the burst detector waits for a count of its own.
    records = await newcomer_beside_a_group(["ewm_mean", "burst"], [START + 600.0 + n / 5 for n in range(30)])
    # Judged from its first rate by the borrowed ewm_mean, but not by a group's count of records.
    assert all(attribute(record, "otelml.score.ewm_mean") is not None for record in records)
    assert [attribute(record, "otelml.score.burst") for record in records] == [0.0] * len(records)


def test_burst_judges_the_rate_target_only():
    config = AnomalyConfig.model_validate({"target": "duration", "models": ["ewm_mean", "burst"]})
    assert 'models::1: burst judges target "rate" only, not "duration"' in config.validate_config()
