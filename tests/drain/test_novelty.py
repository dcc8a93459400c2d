"""Template-aware scoring: the novelty target after the drain processor, and its evaluation on BGL."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evaluation.logs import NOVELTY, SYSTEMS, detector_flags, load_sample, locate_data
from otelml import conventions
from otelml.component import ComponentID, CreateSettings, Kind
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.connectors.anomaly_alerts.connector import AnomalyAlertsConnector
from otelml.pdata import Signal
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.novelty import COMMON_SHARE, DECAY, RARE_SHARE, SETTLED, Novelty, template_code
from otelml.telemetry import Telemetry
from tests.anomaly.support import make_processor as make_anomaly
from tests.conftest import Collect, logs_of
from tests.drain.support import attribute, logs, make_processor, records

COMMON = ["GET /cart took {n} ms", "user {n} logged in from 10.0.{n}.1", "cache hit ratio {n} percent"]
USUAL = ["payment {n} accepted", "connection pool size {n}"]


def common_lines(count: int, seed: int = 3) -> list[str]:
    chooser = random.Random(seed)
    return [chooser.choice(COMMON if chooser.random() < 0.9 else USUAL).format(n=chooser.randint(1, 999)) for _ in range(count)]


async def score(drain, anomaly, lines: list[str], first_second: int) -> list:
    batch = logs(("shop", lines))
    for number, record in enumerate(records(batch)):
        record.time_unix_nano = (1_700_000_000 + first_second + number) * 10**9
    await drain.consume(batch)
    await anomaly.consume(drain.next_consumer.batches[-1])
    return records(anomaly.next_consumer.batches[-1])


def flagged(record) -> bool:
    return any(kv.key == conventions.ANOMALY and kv.value.bool_value for kv in record.attributes)


async def test_a_never_seen_error_message_is_flagged_after_warmup_and_a_common_one_is_not():
    drain = make_processor()
    anomaly = make_anomaly(Signal.LOGS, **NOVELTY)
    stream = common_lines(3000)
    for start in range(0, len(stream), 500):
        scored = await score(drain, anomaly, stream[start : start + 500], start)
        assert not any(flagged(record) for record in scored)
    crash, common, usual, again = await score(
        drain,
        anomaly,
        ["segfault in worker 7 at 0x7ffd", "GET /cart took 5 ms", "payment 42 accepted", "segfault in worker 9 at 0x7ffe"],
        3000,
    )
    assert flagged(crash) and flagged(again)
    assert not flagged(common) and not flagged(usual)
    assert attribute(crash, conventions.TARGET) == "novelty"  # alert details: the demo sets alerts: true


async def test_a_novelty_alert_names_the_new_message_and_how_rare_it_is():
    drain = make_processor()
    anomaly = make_anomaly(Signal.LOGS, **NOVELTY)
    await score(drain, anomaly, common_lines(1000), 0)
    await score(drain, anomaly, ["segfault in worker 7 at 0x7ffd"], 1000)
    sink = Collect()
    connector = AnomalyAlertsConnector(
        CreateSettings(ComponentID("anomaly_alerts"), Kind.CONNECTOR, Telemetry()), AnomalyAlertsConfig(), {Signal.LOGS: sink}
    )
    await connector.consume(anomaly.next_consumer.batches[-1])
    (alert,) = logs_of(sink.batches)
    # Never seen after 1,000 settled records: its share estimate is 1 / (2 (n + 1)), n the key's decayed count.
    decayed = (1 - DECAY**1000) / (1 - DECAY)
    assert alert.body.string_value.startswith(
        f'anomaly in service.name=shop: rare message "segfault in worker <*> at <*>": about 1 in {2 * (decayed + 1):,.0f} '
        "records of the key, its usual ones 1 in 100 or more; score 0."
    ), alert.body.string_value
    assert attribute(alert, conventions.TEMPLATE) == "segfault in worker <*> at <*>"


async def test_a_young_key_does_not_flag_a_message_it_had_not_logged_yet():
    # A service's first records: its vocabulary has not settled, so a message it had simply not logged yet is no news.
    drain = make_processor()
    anomaly = make_anomaly(Signal.LOGS, **NOVELTY)
    scored = await score(drain, anomaly, common_lines(400) + ["order 17 shipped to warehouse 3"], 0)
    assert not any(flagged(record) for record in scored)


async def test_after_a_settled_vocabulary_the_first_of_a_burst_of_new_messages_is_flagged_and_the_rest_not():
    drain = make_processor()
    anomaly = make_anomaly(Signal.LOGS, **NOVELTY)
    await score(drain, anomaly, common_lines(1000), 0)
    dump = ["kernel panic in module {n}", "register r{n} holds 0x{n}ff", "stack frame {n} at 0x{n}aa", "core written to disk"]
    scored = await score(drain, anomaly, [line.format(n=7) for line in dump] + common_lines(20, seed=4), 1000)
    assert [flagged(record) for record in scored[:4]] == [True, False, False, False]
    assert not any(flagged(record) for record in scored[4:])


def test_rarity_judges_the_novelty_target_only():
    assert AnomalyConfig(target="novelty", models=["rarity"]).validate_config() == []
    assert AnomalyConfig(target="duration", models=["ewm_mean", "rarity"]).validate_config() == [
        'models::1: rarity judges target "novelty" only, not "duration"'
    ]
    assert AnomalyConfig(models=["rarity"]).validate_config() == [
        'models::0: rarity judges target "novelty" only, not the default target'
    ]


def test_a_new_template_is_rare_only_after_the_keys_vocabulary_has_settled():
    novelty = Novelty()
    state = {name: np.full((1, *field.shape), field.fill, field.dtype) for name, field in novelty.fields.items()}

    def step(template: str) -> float:
        return float(novelty.step(state, 1, np.array([template_code(template)]))[0])

    for _ in range(SETTLED - 10):
        step("common")
    assert step("new before the run has settled") < np.log(COMMON_SHARE / RARE_SHARE)
    for _ in range(SETTLED + 10):  # a few more than SETTLED: the record count decays
        step("common")
    assert step("new after a settled run") >= np.log(COMMON_SHARE / RARE_SHARE)
    # The next new template comes right after a new one: the vocabulary is changing, it is not rare.
    assert step("another new one") == 0.0


def test_novelty_is_zero_for_common_templates_and_grows_with_rarity():
    novelty = Novelty()
    state = {name: np.full((1, *field.shape), field.fill, field.dtype) for name, field in novelty.fields.items()}

    def step(template: str) -> float:
        return float(novelty.step(state, 1, np.array([template_code(template)]))[0])

    for number in range(5000):
        step("common" if number % 10 else "usual")  # "usual": one record in ten
    assert step("common") == 0.0 and step("usual") == 0.0
    never_seen = step("rare")
    seen_once = step("rare")
    for _ in range(3):
        step("rare")
    seen_five_times = step("rare")
    assert never_seen > seen_once > seen_five_times > 0.0
    records = (1 - DECAY**5002) / (1 - DECAY)  # the key's records so far, each halving over HALF_LIFE
    assert never_seen == pytest.approx(np.log(COMMON_SHARE * (records + 1) / 0.5))


def test_the_table_of_templates_is_bounded_and_makes_room_for_new_ones():
    novelty = Novelty()
    state = {name: np.full((2, *field.shape), field.fill, field.dtype) for name, field in novelty.fields.items()}
    for number in range(1000):
        novelty.step(state, 2, np.array([template_code(f"a{number}"), template_code("b")]))
    assert state["templates"].shape == (2, 256)
    assert np.isfinite(state["templates"][0]).all() and np.isfinite(state["templates"][1]).sum() == 1
    # The last template of key 0 is in its table; key 1 has counted its one template 1000 times (decayed).
    assert template_code("a999") in state["templates"][0]
    assert state["counts"][1].max() == pytest.approx(sum(0.5 ** (k / 10_000) for k in range(1000)), rel=1e-6)


def test_novelty_exists_for_logs_only():
    [problem] = AnomalyConfig(target="novelty").validate_signal(Signal.TRACES)
    assert problem == 'target: "novelty" does not exist in traces'
    assert AnomalyConfig(target="novelty").validate_signal(Signal.LOGS) == []


def test_bgl_alerts_the_novelty_score_flags():
    flags = detector_flags(load_sample(locate_data(), "BGL"))
    assert (flags.alert_lines, flags.categories, flags.normal_lines) == (143, 12, 1857)
    # Alert lines are flagged several times as often as normal ones (see evaluation/README.md for how many).
    assert flags.categories_flagged >= 5
    assert flags.alerts_flagged / flags.alert_lines > 5 * flags.normals_flagged / flags.normal_lines


@pytest.mark.parametrize("system", [system for system in SYSTEMS if system != "BGL"])
def test_the_novelty_detector_flags_few_lines_of_healthy_systems(system):
    flags = detector_flags(load_sample(locate_data(), system))
    assert flags.normals_flagged <= 0.0025 * flags.normal_lines, flags
