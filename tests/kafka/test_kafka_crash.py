"""At-least-once across a crash: otelml (kafka receiver -> file exporter) killed with SIGKILL mid-stream and restarted."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from tests.kafka.support import kill_mid_stream_and_restart, measure, numbered_logs

pytestmark = pytest.mark.integration

MESSAGES, PER_MESSAGE = 400, 10


def kafka_to_file_config() -> dict:
    return {
        "receivers": {
            "kafka": {
                "brokers": "${env:KAFKA_BROKERS}",
                "group_id": "crash",
                "initial_offset": "earliest",
                "session_timeout": "6s",
                "heartbeat_interval": "1s",
                "logs": {"topics": ["stream"]},
            }
        },
        # Appending, so that the restarted process adds to what the killed one wrote; flushing
        # every write, so that what the exporter accepted (and the receiver committed) is in the file.
        "exporters": {"file": {"path": "${env:OUT}/out.jsonl", "append": True, "flush_interval": 0}},
        "service": {
            "pipelines": {"logs": {"receivers": ["kafka"], "exporters": ["file"]}},
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }


def produce_stream(bootstrap: str, stop_after: float = 7.0) -> None:
    """MESSAGES messages of PER_MESSAGE numbered records, spread over ``stop_after`` seconds."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    pause = stop_after / MESSAGES
    for index in range(MESSAGES):
        producer.produce("stream", numbered_logs(index * PER_MESSAGE, PER_MESSAGE).SerializeToString())
        producer.poll(0)
        time.sleep(pause)
    assert producer.flush(15) == 0


async def test_sigkill_mid_stream_then_restart_every_record_at_least_once(tansu, otelml_process):
    await tansu.create_topic("stream", partitions=3)
    otelml = otelml_process(kafka_to_file_config(), {"KAFKA_BROKERS": tansu.bootstrap}).start()
    total = MESSAGES * PER_MESSAGE
    # The group's first assignment takes a few seconds and brings the backlog; kill in the steady flow after it.
    killed_at, duplicates = await kill_mid_stream_and_restart(otelml, lambda: produce_stream(tansu.bootstrap), total, total // 2)
    measure(
        f"kafka receiver, SIGKILL after {killed_at} of {total} records then restart: every record present, {duplicates} duplicates"
    )
