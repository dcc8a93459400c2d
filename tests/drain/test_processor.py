"""The drain processor on OTLP batches: attributes, bodies, keys, warmup, metrics and restarts."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelml import conventions
from otelml.checkpoint import CheckpointError
from otelml.telemetry import Telemetry
from tests.drain.support import attribute, logs, make_processor, records, template_ids, templates

KEY = "a-checkpoint-key-of-enough-length"
LOGINS = ["user alice logged in from 10.0.0.1", "user bob logged in from 10.0.0.2", "user carol logged in from 10.0.0.3"]


async def process(processor, batch):
    await processor.consume(batch)
    return processor.next_consumer.batches[-1]


async def test_every_record_gets_its_template_and_id():
    processor = make_processor()
    out = await process(processor, logs(("shop", ["GET /cart took 12 ms", "GET /cart took 40 ms", "cart empty"])))
    assert templates(out) == ["GET /cart took <*>", "GET /cart took <*>", "cart empty"]
    ids = template_ids(out)
    assert ids[0] == ids[1] != ids[2] and all(len(i) == 16 for i in ids)


async def test_a_template_that_grows_keeps_its_id():
    processor = make_processor()
    out = await process(processor, logs(("auth", LOGINS + ["user dave logged in from 10.0.0.4"])))
    assert templates(out)[2:] == ["user <*> logged in from <*>"] * 2
    ids = template_ids(out)
    assert ids[3] == ids[2] and ids[2] in ids[:2]


async def test_attributes_written_upstream_are_replaced_not_repeated():
    processor = make_processor()
    batch = logs(("shop", ["payment failed for order 7"]))
    record = records(batch)[0]
    record.attributes.add(key=conventions.TEMPLATE).value.string_value = "stale"
    record.attributes.add(key="http.route").value.string_value = "/pay"
    out = await process(processor, batch)
    [record] = records(out)
    assert attribute(record, conventions.TEMPLATE) == "payment failed for order <*>"
    assert attribute(record, "http.route") == "/pay"


async def test_body_field_picks_the_message_of_a_map_body():
    processor = make_processor(body_field="message")
    batch = ExportLogsServiceRequest()
    record = batch.resource_logs.add().scope_logs.add().log_records.add()
    entry = record.body.kvlist_value.values.add(key="message")
    entry.value.string_value = "user 42 logged in"
    record.body.kvlist_value.values.add(key="level").value.string_value = "info"
    out = await process(processor, batch)
    assert templates(out) == ["user <*> logged in"]


async def test_a_map_body_without_body_field_is_templated_by_its_message_like_the_same_json_text():
    processor = make_processor()
    batch = logs(("shop", ['{"message": "user 7 logged in", "user": {"name": "bob"}}', '{"ok": true, "user": "x"}']))
    scope = batch.resource_logs[0].scope_logs[0]
    record = scope.log_records.add()
    record.body.kvlist_value.values.add(key="message").value.string_value = "user 42 logged in"
    record.body.kvlist_value.values.add(key="ok").value.bool_value = False
    # Without a message, a map body is known by its fields' names.
    fields = scope.log_records.add().body.kvlist_value.values
    fields.add(key="ok").value.bool_value = True
    fields.add(key="user").value.kvlist_value.values.add(key="name").value.string_value = "alice"
    out = await process(processor, batch)
    assert templates(out) == ["user <*> logged in", "ok=<*> user=<*>", "user <*> logged in", "ok=<*> user.name=<*>"]
    ids = template_ids(out)
    assert ids[0] == ids[2] != ids[1]


async def test_a_map_body_wrapping_a_containers_line_is_templated_by_that_line():
    # fluent-bit's record of a container's line: the line under "log", the pod's metadata beside it.
    processor = make_processor()
    batch = logs(("shop", ['{"msg": "cache warmed", "entries": 12}']))
    for entries in (7, 9):
        record = batch.resource_logs[0].scope_logs[0].log_records.add()
        record.body.kvlist_value.values.add(key="log").value.string_value = f'{{"msg": "cache warmed", "entries": {entries}}}\n'
        record.body.kvlist_value.values.add(key="stream").value.string_value = "stderr"
        pod = record.body.kvlist_value.values.add(key="kubernetes").value.kvlist_value.values
        pod.add(key="pod_name").value.string_value = f"web-{entries}"
    out = await process(processor, batch)
    assert templates(out) == ["cache warmed"] * 3
    assert len(set(template_ids(out))) == 1


async def test_empty_bodies_pass_unannotated_and_are_counted():
    telemetry = Telemetry()
    processor = make_processor(telemetry=telemetry)
    batch = logs(("shop", ["", "   ", "cart empty"]))
    records(batch)[0].ClearField("body")
    out = await process(processor, batch)
    assert templates(out) == [None, None, "cart empty"]
    assert telemetry.value("otelcol_processor_drain_log_records_annotated_total", processor="drain") == 1
    assert telemetry.value("otelcol_processor_drain_log_records_unannotated_total", processor="drain") == 2
    assert telemetry.value("otelcol_processor_drain_clusters_active", processor="drain") == 1


async def test_warmup_holds_annotations_until_enough_clusters():
    telemetry = Telemetry()
    processor = make_processor(telemetry=telemetry, warmup_min_clusters=3)
    out = await process(processor, logs(("shop", ["cart empty", "disk full", "cart empty", "fan failure", "disk full"])))
    assert templates(out) == [None, None, None, "fan failure", "disk full"]
    assert telemetry.value("otelcol_processor_drain_log_records_unannotated_total", processor="drain") == 3


async def test_templates_are_learned_per_service():
    processor = make_processor()
    out = await process(processor, logs(("auth", LOGINS), ("billing", ["user dave logged in from 10.0.0.4"])))
    assert templates(out)[2:] == ["user <*> logged in from <*>", "user dave logged in from <*>"]


async def test_a_record_attribute_can_be_part_of_the_key():
    processor = make_processor(key=["resource.service.name", "attributes.tenant"])
    batch = logs(("auth", LOGINS + ["user dave logged in from 10.0.0.4"]))
    for record, tenant in zip(records(batch), ["a", "a", "a", "b"]):
        record.attributes.add(key="tenant").value.string_value = tenant
    out = await process(processor, batch)
    assert templates(out)[2:] == ["user <*> logged in from <*>", "user dave logged in from <*>"]


async def test_evictions_are_counted():
    telemetry = Telemetry()
    processor = make_processor(telemetry=telemetry, max_clusters=2)
    await process(processor, logs(("shop", ["cart empty", "disk full", "fan failure", "power lost"])))
    assert telemetry.value("otelml_drain_evicted_clusters_total", processor="drain") == 2
    assert telemetry.value("otelcol_processor_drain_clusters_active", processor="drain") == 2


async def test_templates_and_ids_are_the_same_after_a_restart(tmp_path):
    checkpoint = {"path": str(tmp_path / "drain.checkpoint"), "key": KEY}
    first = make_processor(checkpoint=checkpoint, warmup_min_clusters=2)
    await first.start(host=None)
    before = await process(first, logs(("auth", LOGINS + ["connection reset by peer"])))
    await first.shutdown()

    second = make_processor(checkpoint=checkpoint, warmup_min_clusters=2)
    await second.start(host=None)
    after = await process(second, logs(("auth", ["user erin logged in from 10.0.0.9", "connection reset by peer"])))
    await second.shutdown()
    # Warmup is over for good, and both templates keep their text and id.
    assert templates(after) == [templates(before)[2], "connection reset by peer"]
    assert template_ids(after) == [template_ids(before)[2], template_ids(before)[3]]


async def test_a_changed_checkpoint_is_refused(tmp_path):
    path = tmp_path / "drain.checkpoint"
    checkpoint = {"path": str(path), "key": KEY}
    first = make_processor(checkpoint=checkpoint)
    await first.start(host=None)
    await process(first, logs(("auth", LOGINS)))
    await first.shutdown()
    path.write_bytes(path.read_bytes().replace(b"alice", b"mallory", 1).replace(b"logged", b"Logged"))
    with pytest.raises(CheckpointError, match="signature"):
        await make_processor(checkpoint=checkpoint).start(host=None)


async def test_other_tree_settings_start_afresh(tmp_path):
    checkpoint = {"path": str(tmp_path / "drain.checkpoint"), "key": KEY}
    first = make_processor(checkpoint=checkpoint)
    await first.start(host=None)
    await process(first, logs(("auth", LOGINS)))
    await first.shutdown()
    second = make_processor(checkpoint=checkpoint, tree_depth=5)
    await second.start(host=None)
    assert len(second.miner) == 0
    await second.shutdown()


async def test_two_processors_may_not_share_a_checkpoint(tmp_path):
    checkpoint = {"path": str(tmp_path / "drain.checkpoint"), "key": KEY}
    first = make_processor(checkpoint=checkpoint)
    await first.start(host=None)
    with pytest.raises(ValueError, match="already used"):
        await make_processor(name="other", checkpoint=checkpoint).start(host=None)
    await first.shutdown()
