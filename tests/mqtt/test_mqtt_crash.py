"""At-least-once across a crash: otelml (mqtt receiver, QoS 1, kept session -> file exporter) killed with SIGKILL mid-stream."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest

from tests.kafka.support import eventually, kill_mid_stream_and_restart, measure

pytestmark = pytest.mark.integration

READINGS = 3000


def mqtt_to_file_config() -> dict:
    return {
        "receivers": {
            "mqtt": {
                "broker": "${env:MQTT_BROKER}",
                "client_id": "otelml-crash",
                "clean_start": False,
                "topics": [{"topic": "plant/#", "qos": 1, "encoding": "json"}],
            }
        },
        # Appending, so that the restarted process adds to what the killed one wrote; flushing every
        # write, so that what the exporter accepted (and the receiver acknowledged) is in the file.
        "exporters": {"file": {"path": "${env:OUT}/out.jsonl", "append": True, "flush_interval": 0}},
        "service": {
            "pipelines": {"logs": {"receivers": ["mqtt"], "exporters": ["file"]}},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }


def publish_readings(port: int, seconds: float) -> None:
    """READINGS QoS 1 readings numbered by ``seq``, spread over ``seconds``, each acknowledged by the broker."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for seq in range(READINGS):
            client.publish(
                f"plant/line-{seq % 3}", json.dumps({"seq": seq, "pressure": 1.0 + seq / 1000}), qos=1
            ).wait_for_publish(15)
            time.sleep(seconds / READINGS)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_sigkill_mid_stream_then_restart_every_qos1_reading_at_least_once(mosquitto, otelml_process):
    otelml = otelml_process(mqtt_to_file_config(), {"MQTT_BROKER": mosquitto.url}).start()
    await eventually(lambda: "connected to" in otelml.log(), what="the receiver connecting")
    # The broker keeps the session's readings (unacknowledged and new) while the receiver is away.
    killed_at, duplicates = await kill_mid_stream_and_restart(
        otelml, lambda: publish_readings(mosquitto.port, 5.0), READINGS, READINGS // 3
    )
    measure(
        f"mqtt receiver, QoS 1 kept session, SIGKILL after {killed_at} of {READINGS} readings then restart: "
        f"every reading present, {duplicates} duplicates"
    )
