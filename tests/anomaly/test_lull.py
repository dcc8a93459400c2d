"""The lull detector: a key logging far less than usual (a drop in traffic), flagged within a dozen or so of its records."""

from __future__ import annotations

import random

import pytest

from otelml.processors.anomaly.config import TARGET_MODELS
from otelml.references import RATE
from tests.anomaly.support import START, attribute
from tests.anomaly.test_burst import arrivals, flagged_by, flags_at, newcomer_beside_a_group, templates_processor
from tests.anomaly.test_config import problems

RATE_DEFAULTS = [model.name for model in TARGET_MODELS[RATE]]
WITH_LULL = [*RATE_DEFAULTS, "lull"]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_sixfold_drop_is_flagged_within_twenty_records_and_while_it_lasts(seed):
    # Half an hour at one record a second, then ten minutes at one every six seconds.
    drop_starts, drop_ends = START + 1800.0, START + 2400.0
    times = arrivals(random.Random(seed), lambda t: 1.0 if t < 1800.0 or t >= 2400.0 else 1 / 6, START, START + 2700.0)
    flags = await flags_at(templates_processor(WITH_LULL), times)
    assert not any(flagged for when, flagged in flags if when < drop_starts), "nothing before the drop"
    during = [flagged for when, flagged in flags if drop_starts <= when < drop_ends]
    assert any(during[:20]), "flagged within twenty records of the lower rate"
    # The regressors of a rate smoothed over a few records see the first long gap, if any (once, or never
    # with seed 2): lull keeps the incident open while the drop lasts.
    without = await flags_at(templates_processor(RATE_DEFAULTS), times)
    flagged_without = sum(flagged for when, flagged in without if drop_starts <= when < drop_ends)
    assert sum(during) >= flagged_without + len(during) / 2


async def test_a_clumpy_stream_is_not_a_lull_and_a_lasting_drop_becomes_usual():
    rng = random.Random(4)
    # Two hours of messages that come in clumps (one to ten lines at a time, 2.75 lines a second on average).
    clumpy = [when for when in arrivals(rng, lambda t: 0.5, START, START + 7200.0) for _ in range(rng.randint(1, 10))]
    assert not any(flagged for when, flagged in await flags_at(templates_processor(["lull"]), clumpy))
    # An hour at two a second, then six times less for good.
    times = arrivals(rng, lambda t: 2.0 if t < 3600.0 else 2.0 / 6, START, START + 3 * 3600.0)
    flags = await flags_at(templates_processor(["lull"]), times)
    assert not any(flagged for when, flagged in flags if when < START + 3600.0)
    after = [when - START - 3600.0 for when, flagged in flags if flagged]
    assert after and after[0] < 120.0, "the drop itself is flagged within two minutes"
    assert max(after) < 3600.0, "and it is usual within the hour"


def test_lull_judges_the_rate_target_only_over_five_records_or_more():
    found = problems({"target": "duration", "models": ["ewm_mean", {"name": "lull", "params": {"records": 3}}]})
    assert 'processors::anomaly/latency::models::1: lull judges target "rate" only, not "duration"' in found
    assert any(
        problem.startswith("processors::anomaly/latency::models::1::params:") and "records must be >= 5" in problem
        for problem in found
    )


async def test_a_key_borrowing_its_parents_state_times_its_own_records():
    # A newcomer far slower than one client of the group usually is: the group's usual span is not its own,
    # so lull waits for spans of the newcomer's own records (a window of 20, then 40 learned).
    records = await newcomer_beside_a_group(["ewm_mean", "lull"], [START + 600.0 + 30.0 * n for n in range(30)])
    assert all(attribute(record, "otelml.score.ewm_mean") is not None for record in records)
    assert [attribute(record, "otelml.score.lull") for record in records] == [0.0] * len(records)


async def test_an_alert_on_a_lull_names_the_rate_it_fell_to_and_the_usual_one():
    # What an on-call engineer reads: the rate over the key's last twenty records against its usual rate, in
    # records per second, where the record that crossed may itself show an ordinary smoothed rate.
    times = arrivals(random.Random(1), lambda t: 1.0 if t < 1800.0 else 1 / 6, START, START + 2400.0)
    flagged = await flagged_by(WITH_LULL, "lull", times)
    assert flagged
    for record in flagged:
        assert attribute(record, "otelml.level.usual") == pytest.approx(1.0, rel=0.2)
        assert 0.1 < attribute(record, "otelml.level.recent") < 0.4, "about one in six seconds, over twenty records"
