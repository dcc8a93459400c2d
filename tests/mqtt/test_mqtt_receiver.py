"""The mqtt receiver against a real mosquitto, fed by mosquitto_pub and paho-mqtt."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess

import paho.mqtt.client as mqtt
import pytest

from otelml import pdata
from otelml.component import ComponentID, CreateSettings
from otelml.encoding import any_value_to_python
from otelml.errors import RetryableError
from otelml.pdata import Signal
from otelml.receivers.mqtt.factory import factory as mqtt_receiver
from otelml.receivers.mqtt.receiver import MQTTReceiver
from otelml.synthetic import make_trace_request
from otelml.telemetry import Telemetry
from tests.kafka.support import Host, Sink, eventually, numbered_logs, sequence_numbers, started

pytestmark = pytest.mark.integration

READING_TIME = 1_700_000_000  # 2023-11-14T22:13:20Z


@contextlib.asynccontextmanager
async def subscribed(settings: dict, consumers: dict):
    """An mqtt receiver, started until its subscriptions are granted and always shut down; yields (receiver, telemetry)."""
    async with started("mqtt_receiver", settings, consumers) as (receiver, telemetry):
        await eventually(receiver.subscribed.is_set, timeout=15, what="the subscriptions being granted")
        yield receiver, telemetry


def attributes(entry) -> dict:
    return {kv.key: any_value_to_python(kv.value) for kv in entry.attributes}


@pytest.mark.parametrize("protocol_version", ["5", "3.1.1"])
async def test_mosquitto_pub_json_readings_become_records_per_device(mosquitto, protocol_version):
    sink = Sink()
    settings = {
        "broker": mosquitto.url,
        "protocol_version": protocol_version,
        "topics": [
            {
                "topic": "sensors/+/+",
                "qos": 1,
                "encoding": "json",
                "resource_from_topic": "sensors/{device.id}/{sensor.type}",
                "timestamp_field": "ts",
            }
        ],
    }
    readings = {
        "sensors/d1/temperature": {"value": 21.5, "ts": READING_TIME, "meta": {"unit": "C", "battery": {"level": 0.9}}},
        "sensors/d1/humidity": {"value": 40, "ts": READING_TIME * 1000 + 250},
        "sensors/d2/temperature": {"value": 19.0, "ts": "2023-11-14T22:13:20.000000001Z", "tags": ["a", "b"]},
        "sensors/d3/temperature": {"value": 18.0, "ts": READING_TIME * 10**9 + 7},
        "sensors/d4/temperature": {"value": 17.0},
    }
    async with subscribed(settings, {Signal.LOGS: sink}) as (_, telemetry):
        for topic, reading in readings.items():
            await asyncio.to_thread(mosquitto.publish, topic, json.dumps(reading))
        await eventually(lambda: sink.items == 5, what="five readings arriving")
    by_topic = {}
    for batch in sink.batches:
        for resource in batch.resource_logs:
            for record in resource.scope_logs[0].log_records:
                by_topic[attributes(record)["mqtt.topic"]] = (attributes(resource.resource), record)
    resource, record = by_topic["sensors/d1/temperature"]
    assert resource == {"device.id": "d1", "sensor.type": "temperature"}
    assert attributes(record) == {
        "value": 21.5,
        "ts": READING_TIME,
        "meta.unit": "C",
        "meta.battery.level": 0.9,
        "mqtt.topic": "sensors/d1/temperature",
    }
    assert any_value_to_python(record.body) == readings["sensors/d1/temperature"]
    assert record.time_unix_nano == READING_TIME * 10**9, "epoch seconds"
    assert by_topic["sensors/d1/humidity"][1].time_unix_nano == READING_TIME * 10**9 + 250_000_000, "epoch milliseconds"
    assert by_topic["sensors/d2/temperature"][1].time_unix_nano == READING_TIME * 10**9 + 1, "RFC 3339 with nanoseconds"
    assert "tags" not in attributes(by_topic["sensors/d2/temperature"][1]), "lists stay in the body"
    assert by_topic["sensors/d3/temperature"][1].time_unix_nano == READING_TIME * 10**9 + 7, "epoch nanoseconds"
    untimed = by_topic["sensors/d4/temperature"][1]
    assert READING_TIME * 10**9 < untimed.time_unix_nano <= untimed.observed_time_unix_nano, "no timestamp: the receive time"
    assert telemetry.value("otelcol_receiver_accepted_log_records_total", receiver="mqtt", transport="mqtt") == 5


async def test_paho_publishes_otlp_json_traces_and_otlp_proto_logs(mosquitto):
    traces_sink, logs_sink = Sink(), Sink()
    settings = {
        "broker": mosquitto.url,
        "topics": [
            {"topic": "otlp/traces", "signal": "traces", "encoding": "otlp_json", "qos": 2},
            {"topic": "otlp/logs/#", "encoding": "otlp_proto", "resource_from_topic": "otlp/logs/{host.name}"},
        ],
    }
    spans = make_trace_request(spans=50, services=3)
    logs = numbered_logs(0, 20)
    async with subscribed(settings, {Signal.TRACES: traces_sink, Signal.LOGS: logs_sink}):
        await asyncio.to_thread(
            _paho_publish,
            mosquitto.port,
            [("otlp/traces", pdata.to_json(spans), 2), ("otlp/logs/edge-7", logs.SerializeToString(), 1)],
        )
        await eventually(lambda: traces_sink.items == 50 and logs_sink.items == 20, what="the spans and logs arriving")
    assert traces_sink.batches == [spans]
    assert sequence_numbers(logs_sink.records()) == list(range(20))
    resource = logs_sink.batches[0].resource_logs[0].resource
    assert attributes(resource) == {"service.name": "checkout", "host.name": "edge-7"}


def _paho_publish(port: int, messages: list[tuple[str, bytes, int]]) -> None:
    """Publish with paho-mqtt and wait until the broker acknowledged every message."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload, qos in messages:
            client.publish(topic, payload, qos=qos).wait_for_publish(timeout=15)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_bad_payloads_are_counted_logged_and_dropped_and_invalid_utf8_repaired(mosquitto, caplog):
    caplog.set_level(logging.WARNING, logger="otelml")
    json_sink = Sink()
    settings = {
        "broker": mosquitto.url,
        "topics": [{"topic": "readings/#", "encoding": "json"}, {"topic": "notes/#", "encoding": "text"}],
    }
    async with subscribed(settings, {Signal.LOGS: json_sink}) as (_, telemetry):
        await asyncio.to_thread(mosquitto.publish, "readings/a", b"{not json")
        await asyncio.to_thread(mosquitto.publish, "readings/b", b"[1, 2, 3]")
        await asyncio.to_thread(mosquitto.publish, "readings/c", b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}')
        await asyncio.to_thread(mosquitto.publish, "notes/d", b"\xff\xfe not UTF-8")
        # Deeper than OTLP protobuf can carry: it used to end the receiver's worker, without a word.
        await asyncio.to_thread(mosquitto.publish, "readings/g", b'{"a":' * 40 + b"1" + b"}" * 40)
        await asyncio.to_thread(mosquitto.publish, "readings/e", json.dumps({"ok": True}))
        await asyncio.to_thread(mosquitto.publish, "notes/f", "fine")

        def failures(reason: str) -> float:
            return telemetry.value("otelml_receiver_failed_requests_total", receiver="mqtt", transport="mqtt", reason=reason)

        await eventually(
            lambda: json_sink.items == 3 and failures("undecodable") == 3 and failures("too_large") == 1,
            what="the good readings arriving and the bad ones counted",
        )
        repaired = telemetry.value("otelml_receiver_repaired_log_records_total", receiver="mqtt", transport="mqtt")
    # Text that is not UTF-8 is repaired, not dropped.
    assert sorted(str(any_value_to_python(r.body)) for r in json_sink.records()) == [
        "fine",
        "{'ok': True}",
        "\ufffd\ufffd not UTF-8",
    ]
    assert repaired == 1
    warnings = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(warnings) == 4, "each bad message is logged once"
    assert any("too_large" in w and "readings/c" in w for w in warnings)
    assert any("nested deeper" in w and "readings/g" in w for w in warnings)
    assert any("U+FFFD" in r.getMessage() and "notes/#" in r.getMessage() for r in caplog.records)


async def test_qos1_unaccepted_message_is_redelivered_to_the_kept_session(mosquitto):
    """Only what the pipeline accepted is acknowledged: the rest comes back when the session resumes."""

    class RefusesHeld(Sink):
        refusals = 0

        async def consume(self, batch):
            if any(
                "held" in str(any_value_to_python(r.body))
                for rl in batch.resource_logs
                for sl in rl.scope_logs
                for r in sl.log_records
            ):
                self.refusals += 1
                raise RetryableError("downstream is busy")
            await super().consume(batch)

    settings = {
        "broker": mosquitto.url,
        "client_id": "kept-session",
        "clean_start": False,
        "topics": [{"topic": "jobs", "encoding": "text"}],
        "error_backoff": {"initial_interval": "50ms", "max_interval": "100ms"},
    }
    first = RefusesHeld()
    async with subscribed(settings, {Signal.LOGS: first}):
        await asyncio.to_thread(mosquitto.publish, "jobs", "accepted")
        await eventually(lambda: first.items == 1, what="the first message accepted")
        await asyncio.to_thread(mosquitto.publish, "jobs", "held")
        await eventually(lambda: first.refusals >= 3, what="the held message being retried")
    second = Sink()
    async with subscribed(settings, {Signal.LOGS: second}):
        await eventually(lambda: second.items == 1, what="the held message delivered again")
        await asyncio.sleep(0.5)
    assert [r.body.string_value for r in second.records()] == ["held"], "the accepted message was acknowledged"


async def test_reconnects_with_backoff_after_the_broker_restarts(mosquitto):
    sink = Sink()
    settings = {
        "broker": mosquitto.url,
        "reconnect_min_delay": "100ms",
        "reconnect_max_delay": "1s",
        "topics": [{"topic": "t", "encoding": "text"}],
    }
    async with subscribed(settings, {Signal.LOGS: sink}) as (receiver, _):
        await asyncio.to_thread(mosquitto.publish, "t", "before")
        await eventually(lambda: sink.items == 1, what="the first message")
        await mosquitto.stop()
        await eventually(lambda: not receiver.subscribed.is_set(), what="the receiver noticing the broker is gone")
        await asyncio.sleep(0.5)  # reconnect attempts fail meanwhile (100 ms, then 200 ms, ...)
        await mosquitto.start()
        await eventually(receiver.subscribed.is_set, timeout=20, what="the receiver reconnecting and subscribing again")
        await asyncio.to_thread(mosquitto.publish, "t", "after")
        await eventually(lambda: sink.items == 2, what="a message after the restart")
    assert [r.body.string_value for r in sink.records()] == ["before", "after"]


class Gated(Sink):
    """A sink that holds every batch until ``gate`` is set."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()

    async def consume(self, batch) -> None:
        await self.gate.wait()
        await super().consume(batch)


async def test_mqtt5_flow_control_keeps_what_otelml_has_not_taken_at_the_broker(mosquitto):
    """With receive_maximum, mosquitto sends no more unacknowledged QoS 1 messages than that while the pipeline is busy."""
    sink = Gated()
    settings = {"broker": mosquitto.url, "receive_maximum": 5, "topics": [{"topic": "flow/#", "encoding": "text"}]}
    async with subscribed(settings, {Signal.LOGS: sink}) as (receiver, _):
        lines = "\n".join(f"reading {number}" for number in range(40))
        await asyncio.to_thread(
            subprocess.run,
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-t", "flow/a", "-q", "1", "-l"],
            input=lines,
            text=True,
            check=True,
            timeout=30,
        )
        try:
            await eventually(lambda: receiver.unacknowledged >= 5, what="the first five readings arriving")
            # The other 35 are published and acknowledged to their publisher, but wait at the broker.
            await asyncio.sleep(1.0)
            assert receiver.unacknowledged == 5 and sink.items == 0
        finally:
            sink.gate.set()
        await eventually(lambda: sink.items == 40, what="every reading arriving once the pipeline takes them")
        assert receiver.unacknowledged == 0
    assert sorted(str(any_value_to_python(r.body)) for r in sink.records()) == sorted(f"reading {n}" for n in range(40))


async def test_a_worker_that_fails_is_reported_as_fatal_not_ended_silently(mosquitto, monkeypatch, caplog):
    """A fault nothing foresaw ends the worker: the service is told and stops, as the collector does, rather than
    the receiver going quiet with every later message unhandled (as a too deeply nested reading once made it)."""
    caplog.set_level(logging.ERROR, logger="otelml")

    def unforeseen(self, topic):
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(MQTTReceiver, "_subscription_of", unforeseen)
    config = mqtt_receiver.config_class.model_validate({"broker": mosquitto.url, "topics": [{"topic": "readings/#"}]})
    settings = CreateSettings(ComponentID("mqtt"), mqtt_receiver.kind, Telemetry())
    receiver = mqtt_receiver.create(settings, config, {Signal.LOGS: Sink()})
    host = Host()
    await receiver.start(host)
    try:
        await eventually(receiver.subscribed.is_set, timeout=15, what="the subscription being granted")
        await asyncio.to_thread(mosquitto.publish, "readings/a", "{}")
        await eventually(lambda: host.fatal_errors, what="the failure reported")
    finally:
        await receiver.shutdown()
    assert [str(error) for error in host.fatal_errors] == ["unforeseen"]
    assert [r.getMessage() for r in caplog.records] == ["the message worker failed: RuntimeError('unforeseen')"]
