"""The state changelog against tansu (which may not compact): created compacted, read back as the last value per key."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from otelml.changelog import Changelog, ChangelogError, Restored, changelog_topic
from tests.kafka.support import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
async def changelogs(tansu):
    """Make Changelogs on the test broker; each is stopped after the test."""
    made = []

    def make(topic: str) -> Changelog:
        made.append(Changelog({"bootstrap_servers": tansu.bootstrap}, topic))
        return made[-1]

    yield make
    for changelog in made:
        await changelog.stop()


def topic_settings(bootstrap: str, topic: str) -> tuple[int, str]:
    """(partitions, cleanup.policy) of ``topic`` as librdkafka's admin client describes it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    [described] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return partitions, described.result(timeout=10)["cleanup.policy"].value


async def test_a_missing_changelog_is_created_compacted_with_the_sources_partitions_and_reads_empty(tansu, changelogs):
    topic = changelog_topic("gateways", "anomaly/spans")
    assert topic == "gateways.anomaly.spans.changelog"
    changelog = changelogs(topic)
    await changelog.start(partitions=3)
    assert changelog.policy == "compact"
    assert await asyncio.to_thread(topic_settings, tansu.bootstrap, topic) == (3, "compact")
    assert await changelog.read(2) == Restored({}, None), "a changelog never written restores nothing"
    # Started again (another member, a restart): the topic is found, not created twice.
    again = changelogs(topic)
    await again.start(partitions=3)
    with pytest.raises(ChangelogError, match="has 3 partitions, its source 4"):
        await changelogs(topic).start(partitions=4)


async def test_a_restore_takes_the_last_value_per_key_as_of_the_committed_offset(tansu, changelogs):
    changelog = changelogs("state.changelog")
    await changelog.start(partitions=2)
    await changelog.write(0, {b"a": b"a@5", b"b": b"b@5"}, offset=5)
    await changelog.write(1, {b"a": b"other partition"}, offset=7)
    await changelog.write(0, {b"a": b"a@8"}, offset=8)
    await changelog.write(0, {b"b": None, b"c": b"c@12"}, offset=12)

    assert await changelog.read(0) == Restored({b"a": b"a@8", b"c": b"c@12"}, 12), "the latest of each key; None deleted b"
    assert await changelog.read(0, as_of=12) == Restored({b"a": b"a@8", b"c": b"c@12"}, 12)
    # A member that wrote state for records after the committed offset died before committing them:
    # those records are read again, so the state written for them is not restored.
    assert await changelog.read(0, as_of=10) == Restored({b"a": b"a@8", b"b": b"b@5"}, 8)
    assert await changelog.read(0, as_of=6) == Restored({b"a": b"a@5", b"b": b"b@5"}, 5)
    assert await changelog.read(0, as_of=4) == Restored({}, None)
    assert await changelog.read(1) == Restored({b"a": b"other partition"}, 7)

    # Nothing compacted on tansu: every write is there, keyed "<partition>:<key>", each followed by its marker.
    records = await asyncio.to_thread(read_topic, tansu.bootstrap, "state.changelog", 10, settle=0.3)
    in_order = {
        p: [(m.key(), m.value()) for m in sorted(records, key=lambda m: m.offset()) if m.partition() == p] for p in (0, 1)
    }
    assert in_order == {
        0: [
            (b"0:a", b"a@5"),
            (b"0:b", b"b@5"),
            (b"0", b"5"),
            (b"0:a", b"a@8"),
            (b"0", b"8"),
            (b"0:b", None),
            (b"0:c", b"c@12"),
            (b"0", b"12"),
        ],
        1: [(b"1:a", b"other partition"), (b"1", b"7")],
    }
