"""New keys judged from their first record by their parent group's baseline; keys that group addresses by prefix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from otelml.confmap import ConfigError
from otelml.conventions import ANOMALY, EXPECTED
from otelml.pdata import Signal
from tests.anomaly.support import START, SpanSpec, attribute, logs, make_processor, outputs, records_of, traces
from tests.anomaly.test_config import config_with
from tests.anomaly.test_scoring import steady
from tests.anomaly.test_state import checkpointing
from tests.conftest import build_config

SECURITY = yaml.safe_load((Path(__file__).resolve().parents[2] / "processors/anomaly/testdata/config.yaml").read_text())[
    "processors"
]["anomaly/security"]
CLIENTS = [f"10.0.{i // 25}.{i % 25 + 1}" for i in range(50)]
GATEWAY = {"service.name": "gateway"}
HISTORY = 1800.0  # seconds of normal traffic before a test
KNOWN = 3600.0  # before the security bar: a known client has an hour of its own


def requests(clients: list[str], seconds: float, per_second: float, rng: random.Random, start: float) -> list[dict]:
    """Each client's requests (one log record each) at random times, ``per_second`` on average."""
    found = []
    for client in clients:
        when = start + rng.uniform(0, 1 / per_second)
        while when < start + seconds:
            found.append({"when": when, "attributes": {"client.address": client}})
            when += rng.expovariate(per_second)
    return found


def steady_rate(client: str, per_second: float, count: int, start: float) -> list[dict]:
    return [{"when": start + i / per_second, "attributes": {"client.address": client}} for i in range(count)]


def first_flags(batch, since: float) -> dict[str, float]:
    """Seconds from ``since`` to each client's first flagged record."""
    found = {}
    for record in records_of(batch):
        if attribute(record, ANOMALY):
            found.setdefault(attribute(record, "client.address"), record.time_unix_nano / 1e9 - since)
    return found


async def scored(processor, records: list[dict]):
    batch = logs(sorted(records, key=lambda r: r["when"]), resource=GATEWAY)
    await processor.consume(batch)
    return batch


@pytest.mark.integration  # an hour of traffic per seed
@pytest.mark.parametrize("seed", range(3))
async def test_the_shipped_security_example_flags_a_strangers_scan_and_a_known_clients_burst_in_seconds(seed):
    """50 clients at 0.2 requests/s for an hour; then a never-seen address and a known client go to 20/s."""
    rng = random.Random(seed)
    processor = make_processor(Signal.LOGS, **SECURITY)
    history = await scored(processor, requests(CLIENTS, KNOWN, 0.2, rng, START))
    assert not any(outputs(history, ANOMALY)), "an hour of normal traffic raises nothing"
    now = START + KNOWN
    scan = steady_rate("203.0.113.66", 20, 200, now)
    burst = steady_rate(CLIENTS[7], 20, 200, now + 0.013)
    newcomer = steady_rate("198.51.100.9", 0.2, 3, now + 0.5)
    others = requests([c for c in CLIENTS if c != CLIENTS[7]], 10, 0.2, rng, now)
    flagged = first_flags(await scored(processor, scan + burst + newcomer + others), since=now)
    assert set(flagged) == {"203.0.113.66", CLIENTS[7]}, "a newcomer at the usual rate is not flagged, nor is anyone else"
    assert flagged["203.0.113.66"] <= 2.0
    assert flagged[CLIENTS[7]] <= 5.0


async def test_without_a_parent_a_new_key_waits_out_its_warmup():
    rng = random.Random(1)
    processor = make_processor(Signal.LOGS, **{**SECURITY, "parent": None})
    await scored(processor, requests(CLIENTS, HISTORY, 0.2, rng, START))
    batch = await scored(processor, steady_rate("203.0.113.66", 20, 100, START + HISTORY))
    assert not any(outputs(batch, ANOMALY))


@pytest.mark.integration  # seconds of scoring
async def test_a_new_key_whose_parent_is_not_ready_waits_out_its_warmup():
    """A /24 parent of a never-seen subnet has learned nothing to lend."""
    rng = random.Random(2)
    processor = make_processor(Signal.LOGS, **{**SECURITY, "parent": ["attributes.client.address/24"]})
    await scored(processor, requests(CLIENTS, HISTORY, 0.2, rng, START))
    assert set(processor.parents.store.keys) == {("10.0.0.0/24",), ("10.0.1.0/24",)}
    stranger = await scored(processor, steady_rate("203.0.113.66", 20, 60, START + HISTORY))
    assert not any(outputs(stranger, ANOMALY))
    neighbour = await scored(processor, steady_rate("10.0.1.200", 20, 60, START + HISTORY + 100))
    assert any(outputs(neighbour, ANOMALY)), "a new address of a known subnet is judged by its subnet at once"


async def test_a_new_operation_is_judged_by_its_service_from_its_first_span():
    processor = make_processor(warmup=100, parent=["resource.service.name"])
    spans = [span for name in ("GET /cart", "POST /cart", "GET /item") for span in steady(300, name=name, seed=len(name))]
    await processor.consume(traces(sorted(spans, key=lambda s: s.when)))
    batch = traces(
        [SpanSpec("checkout", "GET /admin", START + 400, 2000.0), SpanSpec("checkout", "GET /help", START + 400, 52.0)]
    )
    await processor.consume(batch)
    assert outputs(batch, ANOMALY) == [True, False]
    assert outputs(batch, EXPECTED)[0] == pytest.approx(50.0, rel=0.2), "expected: what the service's operations take"
    unparented = make_processor(warmup=100)
    await unparented.consume(traces(sorted(spans, key=lambda s: s.when)))
    batch = traces([SpanSpec("checkout", "GET /admin", START + 400, 2000.0)])
    await unparented.consume(batch)
    assert outputs(batch, ANOMALY) == [False]


async def test_a_restarted_processor_lends_its_parents_baselines_at_once(tmp_path):
    """Parents are in the checkpoint: a new operation after a restart is judged from its first span."""
    settings = {"warmup": 100, "parent": ["resource.service.name"]}
    spans = [span for name in ("GET /cart", "POST /cart", "GET /item") for span in steady(300, name=name, seed=len(name))]
    first = checkpointing(tmp_path / "anomaly.ckpt", **settings)
    await first.start(None)
    await first.consume(traces(sorted(spans, key=lambda s: s.when)))
    await first.shutdown()

    restarted = checkpointing(tmp_path / "anomaly.ckpt", **settings)
    await restarted.start(None)
    assert set(restarted.parents.store.keys) == {("checkout",)}
    batch = traces(
        [SpanSpec("checkout", "GET /admin", START + 400, 2000.0), SpanSpec("checkout", "GET /help", START + 400, 52.0)]
    )
    await restarted.consume(batch)
    await restarted.shutdown()
    assert outputs(batch, ANOMALY) == [True, False]


async def test_a_key_can_group_addresses_by_prefix():
    processor = make_processor(Signal.LOGS, key=["attributes.client.address/24/64"], target="rate", warmup=5)
    records = [
        {"when": START + i, "attributes": {"client.address": address}}
        for i, address in enumerate(["10.0.3.7", "10.0.3.9", "2001:db8:1:2::5", "2001:db8:1:2::9", "gateway-1"])
    ]
    await processor.consume(logs(records))
    assert set(processor.store.keys) == {("10.0.3.0/24",), ("2001:db8:1:2::/64",), ("gateway-1",)}
    assert processor.reader.describe(("10.0.3.0/24",)) == "client.address/24/64=10.0.3.0/24"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"parent": []}, "processors::anomaly/latency::parent: must name at least one reference"),
        (
            {"parent": ["attributes.client.address/40/64"]},
            'processors::anomaly/latency::parent::0: reference "attributes.client.address/40/64": a prefix is at most 32 bits long '
            "for IPv4, 128 for IPv6",
        ),
        (
            {"parent": ["log.severity_text"]},
            'processors::anomaly/latency::parent::0: "log.severity_text" does not exist in traces',
        ),
    ],
)
def test_parent_problems_are_named(settings, problem):
    with pytest.raises(ConfigError) as error:
        build_config(config_with(settings))
    assert problem in error.value.problems


async def test_borrowed_baselines_do_not_depend_on_how_the_stream_was_batched():
    """As a replay must give the live scores: the parents learn the same records however the batches fall."""
    rng = random.Random(5)
    stream = sorted(
        requests(CLIENTS[:10], 900, 0.2, rng, START)
        + steady_rate("203.0.113.66", 20, 40, START + 900)
        + steady_rate("198.51.100.9", 0.5, 10, START + 880),
        key=lambda r: r["when"],
    )
    whole = make_processor(Signal.LOGS, **SECURITY)
    at_once = outputs(await scored(whole, stream))
    batched = make_processor(Signal.LOGS, **SECURITY)
    in_pieces = [
        score for start in range(0, len(stream), 97) for score in outputs(await scored(batched, stream[start : start + 97]))
    ]
    assert in_pieces == at_once
