"""Partition owners behind the Kafka receiver, against tansu: state restored on assignment, saved before commits, kept or forgotten on rebalance."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import TopicPartition

from otelml.config import parse
from otelml.confmap import expand
from otelml.errors import RetryableError
from otelml.partitions import Partition
from otelml.pdata import Signal
from otelml.registry import Registry
from otelml.service import Service, StartError
from tests.kafka.owners import RecordCounter, counter_factory
from tests.kafka.support import Sink, eventually, numbered_logs, started
from tests.kafka.test_kafka_receiver import GROUP_SETTINGS, committed, produce

pytestmark = pytest.mark.integration


async def fill(tansu, topic: str, partitions: int, per_partition: int, first: int = 0) -> None:
    """``per_partition`` one-record messages on each partition, the records of partition p from service ``svc-p``."""
    for partition in range(partitions):
        messages = [numbered_logs(first + i, 1, service=f"svc-{partition}").SerializeToString() for i in range(per_partition)]
        await asyncio.to_thread(produce, tansu.bootstrap, topic, messages, partition)


@pytest.fixture
async def counters():
    """Make RecordCounters (arguments as the class takes them); their changelog clients are closed after the test."""
    made = []

    def make(*args, **kwargs) -> RecordCounter:
        made.append(RecordCounter(*args, **kwargs))
        return made[-1]

    yield make
    for counter in made:
        with contextlib.suppress(Exception):
            await counter.shutdown()


def settings(tansu, topic: str, group: str, **extra) -> dict:
    return {**GROUP_SETTINGS, "brokers": [tansu.bootstrap], "group_id": group, "logs": {"topics": [topic]}, **extra}


async def test_rebalance_moves_a_partitions_state_and_keeps_the_one_that_stays(tansu, counters):
    await tansu.create_topic("owned", partitions=2)
    await fill(tansu, "owned", 2, 10)
    first, second = counters(Sink()), counters(Sink())
    async with started("kafka_receiver", settings(tansu, "owned", "moving"), {Signal.LOGS: first}, owners=[first]):
        await eventually(lambda: first.total == 20, what="the first member counting both partitions")
        assert sorted(first.restored()) == [Partition("owned", 0), Partition("owned", 1)], (
            "restored (empty) on the first assignment"
        )
        async with started("kafka_receiver", settings(tansu, "owned", "moving"), {Signal.LOGS: second}, owners=[second]) as (
            receiver,
            _,
        ):
            await eventually(
                lambda: len(first.counts) == 1 and second.restored(), what="one partition moving to the second member"
            )
            [moved] = second.restored()
            [kept] = first.counts
            assert ("forget", moved) in first.events, "the member that gave the partition away dropped its state"
            assert first.restored().count(kept) == 1, "the partition that stayed was not restored again"
            restore = next(e for e in second.events if e[0] == "restore")
            assert restore == ("restore", moved, 10, 10), "restored as of the committed offset, which the first member saved"
            assert second.counts[moved] == {f"svc-{moved.partition}": 10}
            save = [e for e in first.events if e[:2] == ("save", moved)][-1]
            assert first.events.index(save) < first.events.index(("forget", moved))
            await fill(tansu, "owned", 2, 5, first=100)
            await eventually(lambda: first.total + second.total == 30, what="new records counted by whichever member owns them")
            assert first.counts[kept] == {f"svc-{kept.partition}": 15} and second.counts[moved] == {f"svc-{moved.partition}": 15}
            origins = [o for o in second.origins if o.partition == moved]
            assert origins[0].first_offset == 10 and origins[-1].next_offset == 15 and origins[0].source is receiver.source
            assert all(a.next_offset == b.first_offset for a, b in zip(origins, origins[1:])), (
                "each batch says which offsets it holds"
            )
    assert await committed(tansu.bootstrap, "moving", {"owned": 2}) == {("owned", 0): 15, ("owned", 1): 15}


async def test_offsets_are_committed_only_once_the_owner_saved(tansu, counters):
    await tansu.create_topic("gated", partitions=1)
    await fill(tansu, "gated", 1, 10)
    sink = Sink()
    counter = counters(sink, autosave=False)
    async with started(
        "kafka_receiver", settings(tansu, "gated", "gating", max_fetch_records=4), {Signal.LOGS: counter}, owners=[counter]
    ) as (receiver, _):
        await eventually(lambda: sink.items == 10, what="every record accepted")
        assert counter.unsaved_from(receiver.source, Partition("gated", 0)) == 0
        assert await committed(tansu.bootstrap, "gating", {"gated": 1}) == {("gated", 0): 0}, (
            "nothing past the unsaved count committed"
        )
        await counter.save_all(receiver.source)

        async def saved_and_committed() -> bool:
            return await committed(tansu.bootstrap, "gating", {"gated": 1}) == {("gated", 0): 10}

        await eventually(saved_and_committed, what="the commit following the save")
        await fill(tansu, "gated", 1, 3, first=10)
        await eventually(lambda: sink.items == 13, what="more records accepted")
    # Shutdown saves before its last commit.
    assert counter.events[-1] == ("save", Partition("gated", 0), 13)
    assert await committed(tansu.bootstrap, "gating", {"gated": 1}) == {("gated", 0): 13}


async def test_partitions_stay_paused_while_restoring_and_a_rebalance_cancels_the_restore(tansu, counters):
    await tansu.create_topic("slow", partitions=2)
    await fill(tansu, "slow", 2, 6)
    gate = asyncio.Event()
    first, second = counters(Sink(), restore_gate=gate), counters(Sink())
    async with started("kafka_receiver", settings(tansu, "slow", "restoring"), {Signal.LOGS: first}, owners=[first]) as (
        receiver,
        _,
    ):
        await eventually(
            lambda: (
                receiver._client is not None
                and receiver._client.paused() == {TopicPartition("slow", 0), TopicPartition("slow", 1)}
            ),
            what="both partitions paused for the restore",
        )
        assert first.origins == [], "nothing pushed before the owner restored"
        async with started("kafka_receiver", settings(tansu, "slow", "restoring"), {Signal.LOGS: second}, owners=[second]):
            await eventually(
                lambda: any(e[0] == "restore cancelled" for e in first.events), what="the rebalance cancelling the restore"
            )
            cancelled = next(e[1] for e in first.events if e[0] == "restore cancelled")
            assert ("forget", cancelled) in first.events[first.events.index(("restore cancelled", cancelled)) :], (
                "a cancelled restore is forgotten"
            )
            gate.set()
            await eventually(
                lambda: first.total + second.total == 12 and first.total and second.total,
                what="both members counting their partition once restored",
            )
    assert sorted(o.partition for o in first.origins + second.origins if o.first_offset == 0) == [
        Partition("slow", 0),
        Partition("slow", 1),
    ]


async def test_a_restore_that_cannot_reach_its_state_is_retried(tansu):
    await tansu.create_topic("flaky", partitions=1)
    await fill(tansu, "flaky", 1, 3)

    class FailsOnce(RecordCounter):
        failed = False

        async def restore_partitions(self, source, assignments):
            if not self.failed:
                self.failed = True
                raise RetryableError("the state store is not reachable yet")
            await super().restore_partitions(source, assignments)

    counter = FailsOnce(Sink())
    try:
        async with started("kafka_receiver", settings(tansu, "flaky", "retrying"), {Signal.LOGS: counter}, owners=[counter]):
            await eventually(lambda: counter.total == 3, what="the records counted after the retried restore")
    finally:
        await counter.shutdown()
    assert counter.failed and ("forget", Partition("flaky", 0)) in counter.events


async def test_offset_lag_gauge_per_partition(tansu):
    await tansu.create_topic("lagging", partitions=1)
    await fill(tansu, "lagging", 1, 10)
    gate = asyncio.Event()

    class HoldsSecond(Sink):
        entered = 0

        async def consume(self, batch):
            self.entered += 1
            if self.entered == 2:
                await gate.wait()
            await super().consume(batch)

    sink = HoldsSecond()
    async with started("kafka_receiver", settings(tansu, "lagging", "lag", max_fetch_records=2), {Signal.LOGS: sink}) as (
        _,
        telemetry,
    ):

        def lag() -> float:
            return telemetry.value("otelcol_kafka_receiver_offset_lag", receiver="kafka", topic="lagging", partition="0")

        try:
            await eventually(lambda: sink.items == 2 and sink.entered == 2, what="the first batch taken, the second held")
            assert lag() == 8, "ten messages, two taken"
        finally:
            gate.set()
        await eventually(lambda: sink.items == 10 and lag() == 0, what="the partition caught up")


def pipeline_config(processors: dict, chain: list[str]) -> dict:
    return {
        "receivers": {"kafka": {"brokers": "127.0.0.1:1", "logs": {"topics": ["t"]}}},
        "processors": processors,
        "exporters": {"debug": {}},
        "connectors": {"forward": {}},
        "service": {
            "pipelines": {
                "logs": {"receivers": ["kafka"], "processors": chain, "exporters": ["forward"]},
                "logs/counted": {"receivers": ["forward"], "processors": ["counter"], "exporters": ["debug"]},
            },
            # Metrics recorded, not served: no port to bind.
            "telemetry": {"metrics": {"readers": []}},
        },
    }


def counting_service(document: dict) -> Service:
    """A service of ``document``, whose processor type ``counter`` is the test's RecordCounter."""
    registry = Registry.default()
    registry.add(counter_factory)
    return Service(parse(expand(document), registry), registry)


async def test_owners_are_found_through_connectors_and_a_detaching_batch_processor_is_refused():
    service = counting_service(pipeline_config({"counter": {}, "batch": {"timeout": 0}}, ["batch"]))
    [owner] = service.partition_owners(next(iter(service.graph.receivers)), Signal.LOGS)
    assert isinstance(owner, RecordCounter)
    assert service.partition_owners(next(iter(service.graph.receivers)), Signal.TRACES) == []

    detaching = pipeline_config({"counter": {}, "batch": {"timeout": "200ms"}}, ["batch"])
    service = counting_service(detaching)
    with pytest.raises(StartError) as refused:
        await service.start()
    assert str(refused.value) == (
        "receiver kafka: cannot start: processor counter keeps state per partition of receiver kafka, but processor batch in pipeline logs hands data on "
        "from a task of its own before it, so it cannot tell which partition a record came from: "
        "remove it from the pipeline (a batch processor: or set its timeout to 0), or keep no state per partition in "
        "processor counter (an anomaly processor: state.changelog.enabled: false)"
    )
    assert service.state == "stopped"
