"""Per-key state: LRU and idle eviction, and signed checkpoints across restarts."""

from __future__ import annotations

import asyncio
import stat

import pytest

from otelml.checkpoint import read_signed
from otelml.processors.anomaly.checkpoint import MAGIC, CheckpointError
from otelml.processors.anomaly.config import DEFAULT_MODELS
from otelml.telemetry import Telemetry
from tests.anomaly.support import START, SpanSpec, make_processor, outputs, traces
from tests.anomaly.test_scoring import steady

KEY = "a-long-enough-signing-key"


def evictions(telemetry: Telemetry, reason: str) -> float:
    return telemetry.value("otelml_anomaly_evicted_keys_total", processor="anomaly", reason=reason)


async def test_least_recently_used_keys_are_evicted_and_counted():
    telemetry = Telemetry()
    processor = make_processor(telemetry=telemetry, state={"max_keys": 3})
    spans = [SpanSpec("shop", f"op{n}", START + n, 10.0) for n in range(5)]
    await processor.consume(traces(spans))
    assert [key[1] for key in processor.store.keys] == ["op2", "op3", "op4"]
    assert evictions(telemetry, "lru") == 2
    # Using op2 again makes op3 the oldest.
    await processor.consume(traces([SpanSpec("shop", "op2", START + 5, 10.0), SpanSpec("shop", "op5", START + 6, 10.0)]))
    assert [key[1] for key in processor.store.keys] == ["op4", "op2", "op5"]
    assert evictions(telemetry, "lru") == 3
    assert telemetry.value("otelml_anomaly_keys", processor="anomaly") == 3


async def test_keys_idle_longer_than_the_ttl_are_evicted_by_record_time():
    telemetry = Telemetry()
    processor = make_processor(telemetry=telemetry, state={"ttl": "10m"})
    await processor.consume(traces([SpanSpec("shop", "old", START, 10.0), SpanSpec("shop", "busy", START, 10.0)]))
    await processor.consume(traces([SpanSpec("shop", "busy", START + 300, 10.0)]))
    assert len(processor.store.keys) == 2
    await processor.consume(traces([SpanSpec("shop", "busy", START + 601, 10.0)]))
    assert [key[1] for key in processor.store.keys] == ["busy"]
    assert evictions(telemetry, "ttl") == 1


def checkpointing(path, **settings):
    return make_processor(state={"checkpoint": {"path": str(path), "key": KEY, "interval": "1h"}}, **settings)


async def write_checkpoint(path, records: int = 50) -> None:
    """Run a processor over a steady stream and stop it, leaving its checkpoint at ``path``."""
    writer = checkpointing(path)
    await writer.start(None)
    await writer.consume(traces(steady(records)))
    await writer.shutdown()


# The vectorised path (built-in models in arrays) and the per-record one (River objects per key).
@pytest.mark.parametrize("settings", [{}, {"models": ["ewm_mean", "holt_winters"]}])
async def test_checkpoint_round_trip_gives_identical_scores(tmp_path, settings):
    path = tmp_path / "anomaly.ckpt"
    history, future = steady(500, seed=1), steady(200, start=START + 500, seed=2, level_ms=80.0)
    uninterrupted = make_processor(**settings)
    await uninterrupted.consume(traces(history))
    expected = traces(future)
    await uninterrupted.consume(expected)

    first = checkpointing(path, **settings)
    await first.start(None)
    await first.consume(traces(history))
    await first.shutdown()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was renamed into place"

    restarted = checkpointing(path, **settings)
    await restarted.start(None)
    resumed = traces(future)
    await restarted.consume(resumed)
    await restarted.shutdown()
    assert outputs(resumed) == outputs(expected)
    assert outputs(resumed, "otelml.forecast") == outputs(expected, "otelml.forecast")


async def test_a_tampered_checkpoint_is_refused(tmp_path):
    path = tmp_path / "anomaly.ckpt"
    await write_checkpoint(path)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01
    path.write_bytes(bytes(data))
    reader = checkpointing(path)
    with pytest.raises(CheckpointError, match="failed its signature check"):
        await reader.start(None)
    await reader.shutdown()


async def test_a_checkpoint_signed_with_another_key_or_not_a_checkpoint_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "anomaly.ckpt"
    await write_checkpoint(path, records=0)
    monkeypatch.setenv("OTELML_CHECKPOINT_KEY", "another-signing-key-here")
    stranger = make_processor(state={"checkpoint": {"path": str(path)}})
    with pytest.raises(CheckpointError, match="failed its signature check"):
        await stranger.start(None)
    path.write_bytes(b"\x80\x04pickled bytes that would run code")
    with pytest.raises(CheckpointError, match="is not an anomaly checkpoint"):
        await checkpointing(path).start(None)
    assert not path.read_bytes().startswith(MAGIC)


async def test_a_checkpoint_in_the_earlier_format_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "anomaly.ckpt"
    path.write_bytes(b"OTELML-ANOMALY-CHECKPOINT/2\n" + bytes(32) + b"pickled arrays")
    reader = checkpointing(path)
    with pytest.raises(CheckpointError, match="earlier otelml in checkpoint format 2.*remove the file to start afresh"):
        await reader.start(None)
    await reader.shutdown()


async def test_a_checkpoint_from_other_model_settings_is_ignored(tmp_path):
    path = tmp_path / "anomaly.ckpt"
    await write_checkpoint(path)
    other = checkpointing(path, models=["ewm_mean"])
    await other.start(None)
    assert not other.store.keys
    await other.shutdown()


async def test_a_checkpoint_is_reused_by_the_same_models_whether_listed_or_by_default(tmp_path):
    path = tmp_path / "anomaly.ckpt"
    await write_checkpoint(path)
    listed = checkpointing(path, models=[model.name for model in DEFAULT_MODELS])
    await listed.start(None)
    assert listed.store.keys
    await listed.shutdown()


async def test_two_processors_cannot_share_a_checkpoint_path(tmp_path):
    path = tmp_path / "anomaly.ckpt"
    first, second = checkpointing(path), checkpointing(path)
    await first.start(None)
    with pytest.raises(ValueError, match="already used by another component"):
        await second.start(None)
    await second.shutdown()
    await first.shutdown()
    await first.shutdown()


async def test_a_checkpoint_in_a_folder_not_made_yet_is_written_there(tmp_path):
    path = tmp_path / "state" / "anomaly" / "anomaly.ckpt"
    await write_checkpoint(path)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    restored = checkpointing(path)
    await restored.start(None)
    assert restored.store.keys
    await restored.shutdown()


async def test_checkpoints_are_written_every_interval(tmp_path):
    path = tmp_path / "anomaly.ckpt"
    processor = make_processor(state={"checkpoint": {"path": str(path), "key": KEY, "interval": "20ms"}})
    await processor.start(None)
    try:
        await processor.consume(traces(steady(20)))
        for _ in range(500):
            if path.exists():
                break
            await asyncio.sleep(0.01)
        assert path.exists(), "no checkpoint was written while running"
        restored = checkpointing(path)
        assert restored.store.load(read_signed(path, MAGIC, KEY.encode()), restored.fingerprint)
        assert list(restored.store.keys) == [("checkout", "GET /cart")]
    finally:
        await processor.shutdown()


async def test_a_checkpoint_with_another_state_layout_is_refused(tmp_path):
    path = tmp_path / "anomaly.ckpt"
    await write_checkpoint(path)
    reader = checkpointing(path)
    # The same settings, but this otelml keeps one more per-key field: the layout differs.
    reader.store.layout.fingerprint = bytes(len(reader.store.layout.fingerprint))
    with pytest.raises(CheckpointError, match="incompatible state layout"):
        await reader.start(None)
    await reader.shutdown()


def exporting(**settings):
    return make_processor(state={"checkpoint": {"key": KEY}}, **settings)


@pytest.mark.parametrize("settings", [{}, {"models": ["ewm_mean", "holt_winters"]}])
async def test_exported_keys_continue_elsewhere_with_identical_scores(settings):
    history = traces(steady(300, seed=1) + steady(300, name="GET /item", seed=3))
    future = steady(100, start=START + 300, seed=2) + steady(100, name="GET /item", start=START + 300, seed=4)
    uninterrupted = exporting(**settings)
    await uninterrupted.consume(history)
    assert uninterrupted.store.take_dirty() == {("checkout", "GET /cart"), ("checkout", "GET /item")}
    assert uninterrupted.store.take_dirty() == set()
    entries = uninterrupted.store.export(list(uninterrupted.store.keys))
    expected = traces(future)
    await uninterrupted.consume(expected)

    successor = exporting(**settings)
    successor.store.import_(entries)
    assert successor.store.take_dirty() == set(entries)
    resumed = traces(future)
    await successor.consume(resumed)
    assert outputs(resumed) == outputs(expected)
    assert outputs(resumed, "otelml.incident.id") == outputs(expected, "otelml.incident.id")

    successor.store.remove([("checkout", "GET /cart")])
    assert list(successor.store.keys) == [("checkout", "GET /item")]


async def test_import_refuses_tampered_foreign_or_incompatible_entries():
    source = exporting()
    await source.consume(traces(steady(20)))
    [(key, entry)] = source.store.export(list(source.store.keys)).items()
    target = exporting()
    tampered = bytearray(entry)
    tampered[-5] ^= 0x01
    with pytest.raises(CheckpointError, match="failed its signature check"):
        target.store.import_({key: bytes(tampered)})
    with pytest.raises(CheckpointError, match="was offered as key"):
        target.store.import_({("checkout", "other"): entry})
    other_layout = exporting(models=["ewm_mean"])
    with pytest.raises(CheckpointError, match="incompatible state layout"):
        other_layout.store.import_({key: entry})
    stranger = make_processor(state={"checkpoint": {"key": "another-signing-key-here"}})
    with pytest.raises(CheckpointError, match="failed its signature check"):
        stranger.store.import_({key: entry})
    assert not target.store.keys and not other_layout.store.keys and not stranger.store.keys


async def test_evictions_are_logged_at_most_once_a_minute(caplog):
    processor = make_processor(state={"max_keys": 2})
    with caplog.at_level("WARNING"):
        await processor.consume(traces([SpanSpec("shop", f"op{n}", START + n, 10.0) for n in range(5)]))
        await processor.consume(traces([SpanSpec("shop", f"op{n}", START + n, 10.0) for n in range(5, 8)]))
    [line] = [r for r in caplog.records if "evicted" in r.getMessage()]
    assert "3 key(s)" in line.getMessage() and line.component == "processor anomaly"
    assert evictions(processor.settings.telemetry, "lru") == 6
