"""PipelinePusher (otelml/receiverhelper.py): what the Kafka and MQTT receivers do with the pipeline's answers."""

from __future__ import annotations

import asyncio

import pytest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.configretry import RetryConfig
from otelml.errors import PermanentError
from otelml.receiverhelper import Outcome, PipelinePusher
from otelml.telemetry import Telemetry
from tests.kafka.support import Sink, numbered_logs


def pusher(**backoff) -> tuple[PipelinePusher, Telemetry]:
    telemetry = Telemetry()
    settings = CreateSettings(ComponentID("kafka"), Kind.RECEIVER, telemetry)
    return PipelinePusher(
        settings, "kafka", RetryConfig(**{"initial_interval": 0.01, "max_interval": 0.02, **backoff})
    ), telemetry


def counted(telemetry: Telemetry, name: str, **labels) -> float:
    return telemetry.value(name, **labels)


async def test_retryable_refusals_are_retried_until_accepted():
    push, telemetry = pusher(max_elapsed_time=0)
    sink = Sink(refuse=3)
    assert await push.push(sink, numbered_logs(0, 4), 4, asyncio.Event()) is Outcome.ACCEPTED
    assert sink.calls == 4 and sink.items == 4
    assert counted(telemetry, "otelcol_receiver_refused_log_records_total", receiver="kafka", transport="kafka") == 12
    assert counted(telemetry, "otelcol_receiver_accepted_log_records_total", receiver="kafka", transport="kafka") == 4


@pytest.mark.parametrize(
    "sink, backoff, reason",
    [
        (Sink(refuse=1, error=PermanentError("never")), {}, "permanent_error"),
        (Sink(refuse=1), {"enabled": False}, "retry_disabled"),
        (Sink(refuse=1000), {"max_elapsed_time": 0.05}, "retries_exhausted"),
    ],
    ids=["permanent", "retry-disabled", "exhausted"],
)
async def test_data_refused_for_good_is_rejected_and_counted_as_dropped(sink, backoff, reason):
    push, telemetry = pusher(**backoff)
    assert await push.push(sink, numbered_logs(0, 2), 2, asyncio.Event()) is Outcome.REJECTED
    assert counted(telemetry, "otelml_dropped_items_total", component="kafka", otel_signal="logs", reason=reason) == 2


async def test_stopping_abandons_the_retries_without_acknowledging():
    push, telemetry = pusher(initial_interval=30, max_interval=30, max_elapsed_time=0)
    stop = asyncio.Event()
    attempt = asyncio.create_task(push.push(Sink(refuse=1), numbered_logs(0, 2), 2, stop))
    await asyncio.sleep(0.05)
    stop.set()
    assert await attempt is Outcome.ABANDONED
    assert (
        counted(telemetry, "otelml_dropped_items_total", component="kafka", otel_signal="logs", reason="retries_exhausted") == 0
    )
