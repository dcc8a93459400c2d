"""The file_storage extension and the persistent sending queue built on it."""

from __future__ import annotations

import asyncio
import logging
import stat
import time

import pytest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.confmap import ConfigError
from otelml.extensions.file_storage.config import FileStorageConfig
from otelml.extensions.file_storage.extension import MIB, FileStorage, store_file_name
from otelml.extensions.file_storage.store import RecordStore, StorageError
from otelml.service import StartError
from otelml.telemetry import Telemetry
from tests.conftest import build_config, free_port
from tests.reliability.conftest import receiver_address, running_service
from tests.reliability.faults import Client, Destination

pytestmark = pytest.mark.integration

FAST_RETRY = {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "0s"}


async def open_store(path, lock_timeout: float = 0.0) -> RecordStore:
    return await RecordStore.open(path, fsync=False, lock_timeout=lock_timeout)


async def test_records_keep_their_order_and_outlive_the_store(tmp_path):
    store = await open_store(tmp_path / "queue")
    keys = [await store.append(items, bytes([items]) * 10) for items in (1, 2, 3)]
    await store.delete(keys[1])
    await store.close()
    store = await open_store(tmp_path / "queue")
    try:
        assert await store.entries() == [(keys[0], 1), (keys[2], 3)]
        assert await store.read(keys[2]) == b"\x03" * 10
        with pytest.raises(StorageError, match="missing"):
            await store.read(keys[1])
    finally:
        await store.close()


async def test_every_file_is_owner_only(tmp_path):
    store = await open_store(tmp_path / "queue")
    try:
        await store.append(1, b"secret spans")
        files = sorted(tmp_path.iterdir())
        assert {f.name for f in files} >= {"queue", "queue-wal", "queue.lock"}
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    finally:
        await store.close()


async def test_a_store_is_held_by_one_user_at_a_time(tmp_path):
    store = await open_store(tmp_path / "queue")
    try:
        with pytest.raises(StorageError, match="in use by another process"):
            await open_store(tmp_path / "queue", lock_timeout=0.1)
    finally:
        await store.close()
    second = await open_store(tmp_path / "queue")
    await second.close()


@pytest.mark.parametrize("separate_scratch_directory", [False, True])
async def test_compaction_gives_back_the_space_of_deleted_records(tmp_path, separate_scratch_directory):
    scratch = tmp_path / "scratch" if separate_scratch_directory else tmp_path
    scratch.mkdir(exist_ok=True)
    store = await open_store(tmp_path / "queue")
    try:
        keys = [await store.append(1, bytes(50_000)) for _ in range(100)]
        for key in keys[:-1]:
            await store.delete(key)
        total, live = await store.sizes()
        assert total > 4_000_000 and live < 200_000
        await store.compact(scratch)
        total, _ = await store.sizes()
        assert total < 200_000
        assert await store.entries() == [(keys[-1], 1)]
        assert await store.read(keys[-1]) == bytes(50_000)
        assert stat.S_IMODE((tmp_path / "queue").stat().st_mode) == 0o600
        assert not [f for f in scratch.iterdir() if "compact" in f.name]
    finally:
        await store.close()


def test_store_file_names_follow_the_collector():
    assert store_file_name(Kind.EXPORTER, ComponentID("otlp"), "traces") == "exporter_otlp__traces"
    assert store_file_name(Kind.EXPORTER, ComponentID("otlp", "../x"), "logs") == "exporter_otlp_..~2fx_logs"


def forwarding(destination: Destination, storage: str | None, directory=None, queue: dict | None = None) -> dict:
    """OTLP gRPC in -> otlp exporter with a sending queue (persistent when ``storage``) -> ``destination``."""
    exporter = {
        "endpoint": destination.endpoint,
        "tls": {"insecure": True},
        "timeout": "1s",
        "compression": "none",
        "retry_on_failure": FAST_RETRY,
        "sending_queue": {"num_consumers": 1, **(queue or {})},
    }
    document = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"otlp": exporter},
        "service": {
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp"]}},
            "telemetry": {"metrics": {"readers": []}},
            "shutdown_timeout": "1s",
        },
    }
    if storage:
        exporter["sending_queue"]["storage"] = storage
        document["extensions"] = {storage: {"directory": str(directory)}}
        document["service"]["extensions"] = [storage]
    return document


def queue_size(service) -> float:
    return service.telemetry.value("otelcol_exporter_queue_size", exporter="otlp", data_type="traces")


def dropped(service, reason: str | None = None) -> float:
    labels = {"component": "otlp", "otel_signal": "traces"} | ({"reason": reason} if reason else {})
    return sum(value for name, value in _samples(service, "otelml_dropped_items_total") if labels.items() <= name.items())


def _samples(service, name: str):
    for family in service.telemetry.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                yield sample.labels, sample.value


async def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def stored_records(directory) -> int:
    store = await open_store(directory / "exporter_otlp__traces")
    try:
        return len(await store.entries())
    finally:
        await store.close()


def shutdown_lines(caplog) -> list[str]:
    """What the otlp exporter logged about the batches its shutdown left unsent."""
    return [r.getMessage() for r in caplog.records if r.name == "otelml.exporter.otlp" and "batches" in r.getMessage()]


async def test_queued_batches_outlive_a_restart_and_are_all_delivered(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="otelml")
    destination = Destination(free_port())  # down until the second run
    async with running_service(forwarding(destination, "file_storage", tmp_path)) as service:
        async with Client(receiver_address(service, "grpc"), spans_per_request=10) as client:
            for _ in range(5):
                assert (await client.send()).accepted
        await until(lambda: queue_size(service) == 4)  # the only consumer holds the fifth
    # The shutdown timeout cut the retries short: nothing is dropped, all is on disk.
    assert dropped(service) == 0
    assert await stored_records(tmp_path) == 5
    assert shutdown_lines(caplog) == ["50 spans in 5 batches stay in the persistent queue, to be sent after the next start"]

    await destination.start()
    try:
        async with running_service(forwarding(destination, "file_storage", tmp_path)) as service:
            assert await destination.wait_for(client.acknowledged, timeout=20) == set()
            await until(lambda: queue_size(service) == 0)
        assert destination.duplicates() == 0
        assert service.telemetry.value("otelcol_exporter_sent_spans_total", exporter="otlp") == 50
        assert await stored_records(tmp_path) == 0
    finally:
        await destination.stop()


async def test_a_memory_queue_counts_what_shutdown_cut_off_as_dropped_in_one_line(caplog):
    caplog.set_level(logging.INFO, logger="otelml")
    destination = Destination(free_port())
    async with running_service(forwarding(destination, None)) as service:
        async with Client(receiver_address(service, "grpc"), spans_per_request=10) as client:
            for _ in range(5):
                assert (await client.send()).accepted
    assert dropped(service, "shutdown") == 50
    assert service.telemetry.value("otelcol_exporter_send_failed_spans_total", exporter="otlp") == 50
    # It was a line per batch, as many as the queue holds, and the gauge kept the queue's last size.
    assert shutdown_lines(caplog) == ["dropping 50 spans (shutdown): 5 batches were still queued or being sent at shutdown"]
    assert queue_size(service) == 0


async def test_a_full_persistent_queue_refuses_with_throttling(tmp_path):
    destination = Destination(free_port())
    async with running_service(forwarding(destination, "file_storage", tmp_path, {"queue_size": 2})) as service:
        async with Client(receiver_address(service, "grpc"), spans_per_request=10) as client:
            assert (await client.send()).accepted
            await until(lambda: queue_size(service) == 0)  # taken by the consumer, which keeps retrying
            assert (await client.send()).accepted and (await client.send()).accepted
            refusal = await client.send()
        assert refusal.status == "RESOURCE_EXHAUSTED" and refusal.retry_after is not None
        assert service.telemetry.value("otelcol_exporter_enqueue_failed_spans_total", exporter="otlp") == 10
        assert queue_size(service) == 2
    assert await stored_records(tmp_path) == 3


async def test_a_record_that_cannot_be_read_back_is_dropped_with_a_reason(tmp_path):
    store = await open_store(tmp_path / "exporter_otlp__traces")
    await store.append(7, b"\xff\xff not protobuf")
    await store.close()
    destination = await Destination().start()
    try:
        async with running_service(forwarding(destination, "file_storage", tmp_path)) as service:
            await until(lambda: dropped(service, "unreadable") == 7)
        assert await stored_records(tmp_path) == 0
    finally:
        await destination.stop()


async def test_storage_must_name_a_storage_extension(tmp_path):
    destination = Destination(free_port())
    document = forwarding(destination, None)
    document["exporters"]["otlp"]["sending_queue"]["storage"] = "health_check"
    document["extensions"] = {"health_check": {"endpoint": "127.0.0.1:0"}}
    document["service"]["extensions"] = ["health_check"]
    with pytest.raises(
        StartError, match='^exporter otlp: cannot start: .*"health_check" is not an enabled storage extension'
    ) as caught:
        async with running_service(document):
            pass
    assert isinstance(caught.value.__cause__, ValueError)


def test_the_config_check_resolves_the_storage_reference(tmp_path):
    document = forwarding(Destination(1), "file_storage/queue", tmp_path)
    document["service"]["extensions"] = []
    with pytest.raises(ConfigError) as caught:
        build_config(document)
    assert str(caught.value) == (
        'exporters::otlp::sending_queue::storage: references extension "file_storage/queue" '
        "which is not enabled in service::extensions"
    )
    document["exporters"]["otlp"]["sending_queue"]["storage"] = "file_storage/other"
    with pytest.raises(ConfigError) as caught:
        build_config(document)
    assert str(caught.value) == (
        'exporters::otlp::sending_queue::storage: references extension "file_storage/other" which is not configured'
    )


async def test_the_directory_must_exist_unless_it_may_be_created(tmp_path):
    document = forwarding(Destination(free_port()), "file_storage", tmp_path / "missing")
    document["extensions"]["file_storage"]["compaction"] = {"directory": str(tmp_path / "scratch")}
    with pytest.raises(ConfigError) as caught:
        build_config(document)
    assert caught.value.problems == [
        f"extensions::file_storage::directory: {tmp_path / 'missing'} does not exist (create it, or set create_directory: true)",
        f"extensions::file_storage::compaction::directory: {tmp_path / 'scratch'} does not exist (create it)",
    ]
    (tmp_path / "scratch").mkdir()
    document["extensions"]["file_storage"]["create_directory"] = True
    async with running_service(document):
        assert stat.S_IMODE((tmp_path / "missing").stat().st_mode) == 0o700


async def test_a_directory_gone_since_the_config_was_checked_stops_the_start(tmp_path):
    with pytest.raises(StorageError, match=f"^directory: {tmp_path / 'gone'} does not exist"):
        await file_storage(tmp_path / "gone").start(host=None)


def file_storage(directory, **compaction) -> FileStorage:
    config = FileStorageConfig(directory=str(directory), compaction=compaction)
    return FileStorage(CreateSettings(ComponentID("file_storage"), Kind.EXTENSION, Telemetry()), config)


async def fill_and_empty(store: RecordStore, megabytes: int) -> None:
    keys = [await store.append(1, bytes(100_000)) for _ in range(megabytes * 10)]
    for key in keys:
        await store.delete(key)


async def test_rebound_compaction_shrinks_a_file_once_its_backlog_drained(tmp_path):
    extension = file_storage(
        tmp_path, on_rebound=True, rebound_needed_threshold_mib=2, rebound_trigger_threshold_mib=1, check_interval="20ms"
    )
    await extension.start(host=None)
    try:
        store = await extension.record_store(Kind.EXPORTER, ComponentID("otlp"), "traces")
        await fill_and_empty(store, 3)
        deadline = time.monotonic() + 20
        while (await store.sizes())[0] > MIB:
            assert time.monotonic() < deadline, "not compacted"
            await asyncio.sleep(0.02)
    finally:
        await extension.shutdown()
    assert store.closed


async def test_compaction_on_start(tmp_path):
    store = await open_store(tmp_path / "exporter_otlp__traces")
    await fill_and_empty(store, 3)
    await store.close()
    extension = file_storage(tmp_path, on_start=True)
    await extension.start(host=None)
    try:
        store = await extension.record_store(Kind.EXPORTER, ComponentID("otlp"), "traces")
        assert (await store.sizes())[0] < MIB
    finally:
        await extension.shutdown()
