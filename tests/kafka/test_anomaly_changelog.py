"""The anomaly processor behind the Kafka receiver, against tansu: its per-key state follows each partition through a changelog.

Each member is a Kafka receiver feeding an anomaly processor (made by their
factories) in this process; the scores of every member are compared with
those of one member that read the whole topic alone.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.pdata import Signal
from otelml.processors.anomaly.factory import factory as anomaly_factory
from otelml.processors.anomaly.processor import AnomalyProcessor
from otelml.telemetry import Telemetry
from tests.kafka.spans import KEYS, key_of, rounds, scores, span_id
from tests.kafka.support import Sink, eventually, started
from tests.kafka.test_kafka_receiver import GROUP_SETTINGS

pytestmark = pytest.mark.integration

TOPIC = "mesh"
SPANS_PER_ROUND = len(KEYS)


@pytest.fixture(autouse=True)
def signing_key(monkeypatch):
    monkeypatch.setenv("OTELML_CHECKPOINT_KEY", "a-long-enough-signing-key")


@contextlib.asynccontextmanager
async def member(tansu, group: str, processor_id: str = "anomaly/spans", processor_class=None, **changelog):
    """A Kafka receiver of ``group`` feeding an anomaly processor; yields (processor, sink of its output)."""
    config = anomaly_factory.config_class.model_validate({"state": {"changelog": {"interval": "200ms", **changelog}}})
    sink = Sink()
    settings = CreateSettings(ComponentID.parse(processor_id), Kind.PROCESSOR, Telemetry())
    processor = (processor_class or anomaly_factory.create)(settings, config, Signal.TRACES, sink)
    await processor.start(None)
    receiver_settings = {**GROUP_SETTINGS, "brokers": [tansu.bootstrap], "group_id": group, "traces": {"topics": [TOPIC]}}
    try:
        async with started("kafka_receiver", receiver_settings, {Signal.TRACES: processor}, owners=[processor]):
            yield processor, sink
    finally:
        await processor.shutdown()


async def publish(tansu, first: int, count: int, spikes=frozenset()) -> None:
    """Rounds of spans, keyed by service and span name as the agent does, ten rounds a message per key."""
    settings = {
        "brokers": [tansu.bootstrap],
        "traces": {"topic": TOPIC, "partition_by": ["resource.service.name", "span.name"]},
        "sending_queue": {"enabled": False},
    }
    async with started("kafka_exporter", settings) as (exporter, _):
        for start in range(first, first + count, 10):
            await exporter.consume(rounds(start, min(10, first + count - start), spikes))


def scored(*sinks) -> int:
    return len({span for sink in sinks for span in scores(sink.batches)})


async def reference_scores(tansu, total: int) -> dict:
    """The scores of one member reading the whole topic from the start, alone."""
    async with member(tansu, "reference") as (_, sink):
        await eventually(lambda: scored(sink) == total, timeout=60, what="the reference member scoring everything")
    return scores(sink.batches)


def assert_same_scores(sinks, reference: dict) -> None:
    for sink in sinks:
        for batch in sink.batches:
            for span, score in scores([batch]).items():
                assert score == reference[span], f"span {span.hex()} of {key_of(span)}"


async def test_a_partition_moving_to_a_new_member_keeps_its_models_and_the_scores_of_one_member(tansu):
    await tansu.create_topic(TOPIC, partitions=2)
    await publish(tansu, 0, 120)
    async with member(tansu, "handover") as (first, first_sink):
        await eventually(lambda: scored(first_sink) == 120 * SPANS_PER_ROUND, timeout=60, what="the first member scoring")
        assert len(first.store.keys) == len(KEYS)
        async with member(tansu, "handover") as (second, second_sink):
            await eventually(
                lambda: second.store.keys and len(first.store.keys) + len(second.store.keys) == len(KEYS),
                what="the second member restoring the keys of the partition it took",
            )
            assert not set(first.store.keys) & set(second.store.keys), "a key lives on one member"
            moved = set(second.store.keys)
            assert all(second.store.arrays["count"][slot] == 120 for slot in second.store.keys.values()), (
                "the moved keys arrive warm, with all 120 records learned"
            )
            spiked = KEYS.index(min(moved))
            await publish(tansu, 120, 60, spikes=frozenset({(125, spiked)}))
            await eventually(
                lambda: scored(first_sink, second_sink) == 180 * SPANS_PER_ROUND,
                timeout=60,
                what="both members scoring the new rounds",
            )
    assert scores(second_sink.batches)[span_id(125, spiked)][1] is True, "a spike on a moved key right after the move is flagged"
    assert_same_scores([first_sink, second_sink], await reference_scores(tansu, 180 * SPANS_PER_ROUND))


async def test_a_missing_changelog_behind_committed_offsets_is_caught_up_by_replay(tansu):
    await tansu.create_topic(TOPIC, partitions=2)
    await publish(tansu, 0, 120)
    async with member(tansu, "replaying") as (_, sink):
        await eventually(lambda: scored(sink) == 120 * SPANS_PER_ROUND, timeout=60, what="the group committing 120 rounds")
    # Another processor ID in the same group: its changelog does not exist, the group's offsets do.
    await publish(tansu, 120, 20, spikes=frozenset({(122, 0)}))
    async with member(tansu, "replaying", processor_id="anomaly/renamed") as (renamed, renamed_sink):
        await eventually(lambda: scored(renamed_sink) == 20 * SPANS_PER_ROUND, timeout=60, what="the new rounds scored")
        assert all(renamed.store.arrays["count"][slot] == 140 for slot in renamed.store.keys.values()), (
            "every key learned the 120 replayed rounds once, then the 20 new ones"
        )
    new_scores = scores(renamed_sink.batches)
    assert {int.from_bytes(span, "big") // 1000 for span in new_scores} == set(range(120, 140)), (
        "replayed records are not emitted"
    )
    assert new_scores[span_id(122, 0)][1] is True, "warm enough to flag a spike"
    assert_same_scores([renamed_sink], await reference_scores(tansu, 140 * SPANS_PER_ROUND))


class RestoresOneThenWaits(AnomalyProcessor):
    """Restores its first partition, then waits for ``gate`` before the others: a rebalance can land in between."""

    gate: asyncio.Event
    cancelled = 0

    async def restore_partitions(self, source, assignments):
        await super().restore_partitions(source, assignments[:1])
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        await super().restore_partitions(source, assignments[1:])


async def test_a_rebalance_during_a_restore_leaves_no_key_behind(tansu):
    await tansu.create_topic(TOPIC, partitions=2)
    await publish(tansu, 0, 120)
    async with member(tansu, "interrupted") as (_, sink):
        await eventually(lambda: scored(sink) == 120 * SPANS_PER_ROUND, timeout=60, what="the group's state written")
    RestoresOneThenWaits.gate = asyncio.Event()
    async with member(tansu, "interrupted", processor_class=RestoresOneThenWaits) as (first, first_sink):
        await eventually(lambda: len(first.store.keys) > 0, what="the first partition restored, the second waiting")
        async with member(tansu, "interrupted") as (second, second_sink):
            await eventually(lambda: first.cancelled > 0, what="the rebalance cancelling the restore")
            RestoresOneThenWaits.gate.set()
            await publish(tansu, 120, 20)
            await eventually(
                lambda: scored(first_sink, second_sink) == 20 * SPANS_PER_ROUND,
                timeout=60,
                what="both members scoring after the rebalance",
            )
            assert not set(first.store.keys) & set(second.store.keys), "the cancelled restore left no key behind"
            assert len(first.store.keys) + len(second.store.keys) == len(KEYS)
    assert_same_scores([first_sink, second_sink], await reference_scores(tansu, 140 * SPANS_PER_ROUND))
