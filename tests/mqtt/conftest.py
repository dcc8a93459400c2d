"""A real MQTT broker for the tests: Debian's mosquitto on a free loopback port with its own config file.

A broker that does not start fails the test; it is never skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.kafka.support import BrokerProcess, print_measurements

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto(BrokerProcess):
    """One mosquitto broker; its sessions are lost when it stops."""

    name = "mosquitto"

    def __init__(self, port: int, folder: Path):
        super().__init__(port, folder / "mosquitto.log")
        self.config_path = folder / "mosquitto.conf"
        # max_queued_messages 0: no limit, since the default of 1000 silently
        # drops QoS 1 messages queued for a slow or absent subscriber.
        self.config_path.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
            "log_dest stdout\nlog_type all\n"
        )

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if not Path(MOSQUITTO).is_file():
            pytest.fail("mosquitto is missing: apt-get install mosquitto mosquitto-clients")
        return [MOSQUITTO, "-c", str(self.config_path)]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        """Publish one message with mosquitto_pub (a client we did not write)."""
        data = payload.encode() if isinstance(payload, str) else payload
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-q", str(qos), "-s"],
            input=data,
            check=True,
            timeout=30,
        )


@pytest.fixture
async def mosquitto(tmp_path):
    broker = Mosquitto(free_port(), tmp_path)
    try:
        await broker.start()
        yield broker
    finally:
        await broker.stop()


def pytest_terminal_summary(terminalreporter):
    print_measurements(terminalreporter)
