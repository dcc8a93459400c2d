"""The batch processor: size and timeout triggers, max-size splits, pass-through, flush on shutdown, errors, config."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.confmap import ConfigError
from otelml.errors import PermanentError, RetryableError
from otelml.pdata import Signal, count_items
from otelml.processors.batch.config import BatchConfig
from otelml.processors.batch.processor import BatchProcessor
from otelml.telemetry import Telemetry
from tests.conftest import build_config

# Long enough never to fire during a test: sends then come from size or shutdown only.
NEVER = "1h"


def numbered_spans(first: int, count: int):
    """A trace batch of ``count`` spans named ``first``, ``first + 1``, ..."""
    batch = Signal.TRACES.request_type()
    scope = batch.resource_spans.add().scope_spans.add()
    for number in range(first, first + count):
        scope.spans.add(name=str(number))
    return batch


def names(batches) -> list[int]:
    return [int(s.name) for b in batches for rs in b.resource_spans for ss in rs.scope_spans for s in ss.spans]


class Downstream:
    """The next consumer: records what it receives, or refuses everything with ``error``."""

    mutates_data = False

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.batches = []
        self._arrived = asyncio.Event()

    async def consume(self, batch) -> None:
        if self.error is not None:
            raise self.error
        self.batches.append(batch)
        self._arrived.set()

    async def wait_for_items(self, count: int) -> None:
        # A safety net against a hang, not a timing assertion.
        async with asyncio.timeout(10):
            while sum(count_items(b) for b in self.batches) < count:
                self._arrived.clear()
                await self._arrived.wait()


@contextlib.asynccontextmanager
async def batch_processor(downstream: Downstream, **settings):
    telemetry = Telemetry()
    processor = BatchProcessor(
        CreateSettings(ComponentID("batch"), Kind.PROCESSOR, telemetry), BatchConfig(**settings), Signal.TRACES, downstream
    )
    await processor.start(host=None)
    try:
        yield processor, telemetry
    finally:
        await processor.shutdown()


def triggers(telemetry: Telemetry, trigger: str) -> float:
    return telemetry.value(f"otelcol_processor_batch_{trigger}_trigger_send_total", processor="batch")


async def test_reaching_send_batch_size_sends_the_whole_buffer():
    downstream = Downstream()
    async with batch_processor(downstream, send_batch_size=10, timeout=NEVER) as (processor, telemetry):
        for first in (0, 4, 8):
            await processor.consume(numbered_spans(first, 4))
        await downstream.wait_for_items(12)
        assert [count_items(b) for b in downstream.batches] == [12]
        assert names(downstream.batches) == list(range(12))
        assert triggers(telemetry, "batch_size") == 1
        assert triggers(telemetry, "timeout") == 0


async def test_timeout_sends_a_batch_smaller_than_send_batch_size():
    downstream = Downstream()
    async with batch_processor(downstream, send_batch_size=1000, timeout="50ms") as (processor, telemetry):
        await processor.consume(numbered_spans(0, 2))
        await processor.consume(numbered_spans(2, 1))
        await downstream.wait_for_items(3)
        assert names(downstream.batches) == [0, 1, 2]
        assert triggers(telemetry, "timeout") >= 1
        assert triggers(telemetry, "batch_size") == 0


async def test_send_batch_max_size_splits_without_loss_and_keeps_order():
    downstream = Downstream()
    sizes = [3, 9, 2, 11, 1, 20]
    async with batch_processor(downstream, send_batch_size=5, send_batch_max_size=7, timeout=NEVER) as (processor, _):
        first = 0
        for size in sizes:
            await processor.consume(numbered_spans(first, size))
            first += size
        await processor.shutdown()  # sends whatever is still below send_batch_size
    assert max(count_items(b) for b in downstream.batches) <= 7
    assert names(downstream.batches) == list(range(sum(sizes)))


async def test_timeout_zero_only_splits_and_passes_on_at_once():
    downstream = Downstream()
    async with batch_processor(downstream, send_batch_size=1000, send_batch_max_size=4, timeout=0) as (processor, _):
        small = numbered_spans(0, 3)
        await processor.consume(small)
        assert downstream.batches == [small]  # not buffered, not copied
        await processor.consume(numbered_spans(3, 10))
        assert [count_items(b) for b in downstream.batches] == [3, 4, 4, 2]
        assert names(downstream.batches) == list(range(13))


async def test_shutdown_flushes_the_buffer_and_later_data_is_refused():
    downstream = Downstream()
    async with batch_processor(downstream, send_batch_size=1000, timeout=NEVER) as (processor, _):
        await processor.consume(numbered_spans(0, 5))
        await processor.consume(numbered_spans(5, 5))
        assert downstream.batches == []
        await processor.shutdown()
        assert names(downstream.batches) == list(range(10))
        with pytest.raises(RetryableError):
            await processor.consume(numbered_spans(10, 1))
        await processor.shutdown()  # twice is harmless
    assert names(downstream.batches) == list(range(10))


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermanentError("refused for good"), "downstream_refused"),
        (RetryableError("busy"), "downstream_busy"),
    ],
)
async def test_downstream_failure_is_counted_as_dropped_with_its_reason(error, reason):
    async with batch_processor(Downstream(error), send_batch_size=1000, send_batch_max_size=2000, timeout=NEVER) as (
        processor,
        telemetry,
    ):
        await processor.consume(numbered_spans(0, 7))  # accepted: the sender never sees the failure
        await processor.shutdown()
        assert telemetry.value("otelml_dropped_items_total", component="batch", otel_signal="traces", reason=reason) == 7


def test_config_errors_are_reported_with_their_paths_all_at_once():
    document = {
        "receivers": {"otlp": {"protocols": {"grpc": {}}}},
        "processors": {
            "batch": {"send_batch_size": 100, "send_batch_max_size": 10},
            "batch/2": {"timeout": "-1s"},
            "batch/3": {"send_batch_size": -1, "flush": True},
        },
        "exporters": {"debug": {}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]}}},
    }
    with pytest.raises(ConfigError) as error:
        build_config(document)
    problems = error.value.problems
    assert "processors::batch::send_batch_max_size: must be greater than or equal to send_batch_size" in problems
    assert "processors::batch/2::timeout: must not be negative" in problems
    assert any(p.startswith("processors::batch/3::send_batch_size: ") for p in problems)
    assert "processors::batch/3::flush: unknown key" in problems


def test_defaults_are_the_collectors():
    config = BatchConfig()
    assert (config.send_batch_size, config.send_batch_max_size, config.timeout) == (8192, 0, 0.2)
