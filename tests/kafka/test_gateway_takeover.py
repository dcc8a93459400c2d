"""Gateways of config/gateway.yaml sharing a topic, one of them killed (-9) or stopped mid-stream: its keys go on warm elsewhere.

Spans are written keyed as config/agent.yaml keys them. Every score a
gateway wrote, before or after the takeover, must equal the score one
gateway reading the whole topic alone gives the same span.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import pytest
import yaml

from otelml.pdata import Signal
from tests.conftest import REPO, read_batches
from tests.kafka.spans import KEYS, key_of, rounds, scores, span_id
from tests.kafka.support import eventually, measure, started

pytestmark = pytest.mark.integration

TOPIC, PARTITIONS = "otlp_spans", 6
SIGNING_KEY = "a-long-enough-signing-key"
WARM_ROUNDS, STREAM_ROUNDS, AFTER_ROUNDS = 120, 60, 20
TOTAL_ROUNDS = WARM_ROUNDS + STREAM_ROUNDS + AFTER_ROUNDS


def gateway_config() -> dict:
    """config/gateway.yaml's span pipeline as it ships (Kafka in, anomaly/spans, file out), with short group timeouts."""
    config = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text())
    config["receivers"]["kafka"].update(session_timeout="6s", heartbeat_interval="1s")
    config["processors"] = {"anomaly/spans": config["processors"]["anomaly/spans"]}
    config["exporters"] = {"file": config["exporters"]["file"]}
    config.pop("connectors", None)
    config["service"]["pipelines"] = {"traces": {"receivers": ["kafka"], "processors": ["anomaly/spans"], "exporters": ["file"]}}
    config["receivers"]["kafka"] = {k: v for k, v in config["receivers"]["kafka"].items() if k not in ("logs", "metrics")}
    return config


class Gateway:
    def __init__(self, otelml_process, broker: str, group: str, name: str):
        self.name = name
        self.process = otelml_process(
            gateway_config(), {"KAFKA_BROKERS": broker, "OTELML_CHECKPOINT_KEY": SIGNING_KEY, "OTELML_GROUP_ID": group}
        )
        self.output = self.process.workdir / f"{name}.jsonl"
        self.process.env.update(OTELML_OUTPUT=str(self.output), OTELML_METRICS_ENDPOINT=self.process.env["METRICS"])

    def start(self) -> Gateway:
        self.process.start()
        return self

    def scores(self) -> dict:
        return scores(read_batches(self.output, Signal.TRACES))

    def all_scores(self) -> list[tuple[bytes, tuple]]:
        """Every (span, score) written, duplicates included."""
        return [item for batch in read_batches(self.output, Signal.TRACES) for item in scores([batch]).items()]

    def assigned(self) -> set[int]:
        """The partitions of its last assignment."""
        lines = [line for line in self.process.log().splitlines() if "partitions assigned:" in line]
        return set(map(int, re.findall(rf"{TOPIC}\[(\d+)\]", lines[-1]))) if lines else set()

    def settled(self) -> bool:
        """Its last assignment's state is restored (or it has none)."""
        log = self.process.log()
        assigned_at = log.rfind("partitions assigned:")
        return assigned_at >= 0 and (not self.assigned() or log.rfind("state restored for") > assigned_at)


async def publish(broker: str, first: int, count: int, spikes=frozenset(), pause: float = 0.0) -> None:
    settings = {
        "brokers": [broker],
        "traces": {"topic": TOPIC, "partition_by": ["resource.service.name", "span.name"]},
        "sending_queue": {"enabled": False},
    }
    async with started("kafka_exporter", settings) as (exporter, _):
        for start in range(first, first + count, 10):
            await exporter.consume(rounds(start, min(10, first + count - start), spikes))
            await asyncio.sleep(pause)


def scored_rounds(gateways) -> set[int]:
    """Rounds every key of which some gateway scored."""
    spans = {span for g in gateways for span in g.scores()}
    return {r for r in range(TOTAL_ROUNDS) if all(span_id(r, k) in spans for k in range(len(KEYS)))}


async def reference_scores(otelml_process, broker: str) -> dict:
    reference = Gateway(otelml_process, broker, "reference", "reference").start()
    await eventually(
        lambda: len(reference.scores()) == TOTAL_ROUNDS * len(KEYS), timeout=120, what="the reference gateway scoring the topic"
    )
    reference.process.stop()
    return reference.scores()


@pytest.mark.parametrize(
    "members, stop",
    [(2, signal.SIGKILL), (2, signal.SIGTERM), (3, signal.SIGKILL)],
    ids=["two-kill-9", "two-clean-stop", "three-kill-9"],
)
async def test_a_gateways_keys_go_on_warm_elsewhere_with_the_scores_of_one_gateway(tansu, otelml_process, members, stop):
    await tansu.create_topic(TOPIC, PARTITIONS)
    gateways = [Gateway(otelml_process, tansu.bootstrap, "takeover", f"gateway-{n}").start() for n in range(members)]
    await eventually(
        lambda: (
            sorted(p for g in gateways for p in g.assigned()) == list(range(PARTITIONS))
            and all(g.assigned() and g.settled() for g in gateways)
        ),
        timeout=60,
        what="the gateways sharing the partitions",
    )
    await publish(tansu.bootstrap, 0, WARM_ROUNDS)
    await eventually(lambda: scored_rounds(gateways) == set(range(WARM_ROUNDS)), timeout=60, what="every key warm")
    victim, survivors = gateways[0], gateways[1:]
    moved = {key_of(span) for span in victim.scores()}
    assert moved and all(not {key_of(s) for s in g.scores()} & moved for g in survivors), "each key on one gateway"

    streaming = asyncio.create_task(publish(tansu.bootstrap, WARM_ROUNDS, STREAM_ROUNDS, pause=0.3))
    await eventually(lambda: WARM_ROUNDS + 20 in scored_rounds(gateways), timeout=60, what="the stream flowing")
    victim.process.stop(stop)
    stopped_at = time.monotonic()
    await eventually(
        lambda: (
            sorted(p for g in survivors for p in g.assigned()) == list(range(PARTITIONS)) and all(g.settled() for g in survivors)
        ),
        timeout=60,
        what="the survivors taking the partitions over",
    )
    takeover = time.monotonic() - stopped_at
    await streaming
    # Right after the takeover: a spike on a key that moved.
    spiked = KEYS.index(min(moved))
    first_after = WARM_ROUNDS + STREAM_ROUNDS
    await publish(tansu.bootstrap, first_after, AFTER_ROUNDS, spikes=frozenset({(first_after + 1, spiked)}))
    await eventually(lambda: scored_rounds(gateways) == set(range(TOTAL_ROUNDS)), timeout=90, what="every span scored")
    for gateway in survivors:
        assert gateway.process.stop() == 0

    after = [g for g in survivors if span_id(first_after + 1, spiked) in g.scores()]
    assert len(after) == 1, "the moved key is scored by one survivor"
    assert after[0].scores()[span_id(first_after + 1, spiked)][1] is True, "the spike on the moved key is flagged"
    for key in moved:
        owners = {
            g.name
            for g in survivors
            for span in g.scores()
            if key_of(span) == key and int.from_bytes(span, "big") // 1000 >= first_after
        }
        assert len(owners) == 1, f"{key} scored by one survivor after the takeover"

    reference = await reference_scores(otelml_process, tansu.bootstrap)
    written = [item for g in gateways for item in g.all_scores()]
    assert {span for span, _ in written} == set(reference), "nothing acknowledged is lost"
    assert all(score == reference[span] for span, score in written), "every score equals one uninterrupted gateway's"
    twice = len(written) - len({span for span, _ in written})
    how = "kill -9" if stop == signal.SIGKILL else "clean stop"
    measure(
        f"{members} gateways, {how} of one mid-stream: {len(moved)} keys moved, survivors restored in {takeover:.1f}s after the stop, "
        f"{twice} spans scored twice, every score equal to one uninterrupted gateway's"
    )
