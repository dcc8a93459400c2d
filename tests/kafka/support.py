"""Helpers for the broker tests (Kafka and MQTT): pipeline ends, numbered data, components built by their factories."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml.component import ComponentID, CreateSettings
from otelml.configmodel import nested_problems
from otelml.errors import RetryableError
from otelml.exporters.kafka.factory import factory as kafka_exporter
from otelml.pdata import Batch, Signal, count_items
from otelml.receivers.kafka.factory import factory as kafka_receiver
from otelml.receivers.mqtt.factory import factory as mqtt_receiver
from otelml.registry import Factory
from otelml.telemetry import Telemetry
from tests.conftest import logs_of, read_batches

# Numbers the tests measured (duplicates after a crash, ...), shown at the end of the run.
MEASUREMENTS: list[str] = []

FACTORIES = {"kafka_exporter": kafka_exporter, "kafka_receiver": kafka_receiver, "mqtt_receiver": mqtt_receiver}


class Sink:
    """The end of a pipeline: keeps what it accepted; may refuse the first ``refuse`` pushes."""

    mutates_data = False

    def __init__(self, refuse: int = 0, error: Exception | None = None):
        self.batches: list[Batch] = []
        self.refusals_left = refuse
        self.error = error or RetryableError("not now")
        self.calls = 0

    async def consume(self, batch: Batch) -> None:
        self.calls += 1
        if self.refusals_left:
            self.refusals_left -= 1
            raise self.error
        self.batches.append(batch)

    @property
    def items(self) -> int:
        return sum(count_items(b) for b in self.batches)

    def records(self) -> list:
        return [r for b in self.batches for rl in b.resource_logs for sl in rl.scope_logs for r in sl.log_records]


class GatedSink(Sink):
    """A Sink that holds every batch until ``gate`` is set."""

    def __init__(self, gate: asyncio.Event):
        super().__init__()
        self.gate = gate
        self.held = 0

    async def consume(self, batch: Batch) -> None:
        self.held += 1
        await self.gate.wait()
        await super().consume(batch)


class Host:
    """What a component started on its own may ask of its service; ``owners`` keep state per partition downstream."""

    def __init__(self, owners: list | None = None):
        self.fatal_errors: list[BaseException] = []
        self.owners = owners or []

    def get_extension(self, component_id):
        return None

    def partition_owners(self, receiver_id, signal) -> list:
        return self.owners

    def report_fatal_error(self, component: str, error: BaseException) -> None:
        self.fatal_errors.append(error)


@contextlib.asynccontextmanager
async def started(component: str, settings: dict, *args, owners: list | None = None, host: Host | None = None):
    """``kafka_exporter``, ``kafka_receiver`` or ``mqtt_receiver`` made by its factory from a config map
    that must validate, started and always shut down; yields (component, telemetry).
    ``owners`` are the partition owners its host names for every signal. Without a ``host`` of the
    caller's (who then checks its fatal errors), the component must report none."""
    factory: Factory = FACTORIES[component]
    config = factory.config_class.model_validate(settings)
    assert nested_problems(config) == []
    telemetry = Telemetry()
    instance = factory.create(CreateSettings(ComponentID(factory.type), factory.kind, telemetry), config, *args)
    own_host = host or Host(owners)
    await instance.start(own_host)
    try:
        yield instance, telemetry
    finally:
        await instance.shutdown()
    assert host is not None or own_host.fatal_errors == []


async def eventually(condition, timeout: float = 30.0, what: str = "the condition") -> None:
    """Wait until ``condition()`` (a function or a coroutine function) is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout

    async def holds() -> bool:
        result = condition()
        return await result if inspect.isawaitable(result) else result

    while not await holds():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.05)


def numbered_logs(start: int, count: int, service: str = "checkout") -> ExportLogsServiceRequest:
    """``count`` log records whose ``seq`` attribute runs from ``start``, under one resource."""
    batch = ExportLogsServiceRequest()
    resource = batch.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = service
    scope = resource.scope_logs.add()
    for seq in range(start, start + count):
        record = scope.log_records.add(time_unix_nano=1_700_000_000_000_000_000 + seq, severity_number=9)
        record.body.string_value = f"record {seq}"
        record.attributes.add(key="seq").value.int_value = seq
    return batch


def gauge_metrics(points: int) -> ExportMetricsServiceRequest:
    """One gauge with ``points`` data points valued 0, 1, ..."""
    batch = ExportMetricsServiceRequest()
    metric = batch.resource_metrics.add().scope_metrics.add().metrics.add(name="queue.depth")
    for index in range(points):
        metric.gauge.data_points.add(as_int=index, time_unix_nano=1_700_000_000_000_000_000 + index)
    return batch


def sequence_numbers(records) -> list[int]:
    """The ``seq`` attributes of ``records``, in order."""
    return [kv.value.int_value for record in records for kv in record.attributes if kv.key == "seq"]


def traces(trace_count: int, spans_per_trace: int, services: int = 2) -> ExportTraceServiceRequest:
    """Spans of ``trace_count`` traces interleaved over ``services`` resources."""
    batch = ExportTraceServiceRequest()
    scopes = []
    for service in range(services):
        resource = batch.resource_spans.add()
        resource.resource.attributes.add(key="service.name").value.string_value = f"service-{service}"
        scopes.append(resource.scope_spans.add())
    for trace in range(trace_count):
        for index in range(spans_per_trace):
            scopes[index % services].spans.add(
                trace_id=(trace + 1).to_bytes(16, "big"),
                span_id=(trace * 100 + index + 1).to_bytes(8, "big"),
                name=f"op-{index}",
                start_time_unix_nano=1,
                end_time_unix_nano=2,
            )
    return batch


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0, settle: float = 1.0) -> list:
    """Every message of ``topic`` from the beginning, read by librdkafka (not our client).

    Reads until ``count`` messages arrived, then ``settle`` seconds more to
    catch extra ones; returns confluent-kafka ``Message`` objects. Blocking:
    call it through ``asyncio.to_thread`` while components run.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "otelml-tests-readback", "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + timeout
        partitions = []
        while not partitions:
            try:
                metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            except KafkaException:
                metadata = None
            if metadata is not None and metadata.error is None:
                partitions = sorted(metadata.partitions)
            elif time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} never appeared")
            else:
                time.sleep(0.1)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages = []
        settled_at = None
        while time.monotonic() < (settled_at or deadline):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
            if len(messages) >= count and settled_at is None:
                settled_at = time.monotonic() + settle
        return messages
    finally:
        consumer.close()


async def kill_mid_stream_and_restart(otelml, feed, total: int, kill_after: int) -> tuple[int, int]:
    """SIGKILL and restart otelml in the middle of a stream of numbered log records.

    ``feed`` (blocking, run in a thread) sends records ``seq`` 0 to
    ``total - 1``; otelml writes them to ``out.jsonl`` in its work folder.
    Once more than ``kill_after`` are written, otelml is killed and started
    again; every record must then appear. Returns (records written when
    killed, duplicate records).
    """
    out = otelml.workdir / "out.jsonl"

    def received() -> list[int]:
        return sequence_numbers(logs_of(read_batches(out, Signal.LOGS)))

    feeding = asyncio.create_task(asyncio.to_thread(feed))
    await eventually(lambda: len(received()) > kill_after, what=f"{kill_after} records written")
    assert otelml.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_at = len(received())
    assert not feeding.done(), "killed in the middle of the stream"
    otelml.start()
    await feeding
    await eventually(lambda: set(received()) == set(range(total)), timeout=60, what="every record in the output")
    otelml.stop()
    return killed_at, duplicates(received())


def duplicates(values: list) -> int:
    """How many of ``values`` repeat an earlier one."""
    return len(values) - len(set(values))


def measure(line: str) -> None:
    """Report ``line`` in the summary at the end of the test run."""
    MEASUREMENTS.append(line)
    print(line)


def print_measurements(terminalreporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("broker test measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
        MEASUREMENTS.clear()


def accepts_connections(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class BrokerProcess:
    """A broker run as a child process on a loopback port, its output in ``log_path``.

    ``start`` fails the test (never skips it) when the broker does not
    listen; ``stop`` and ``start`` again keep the port.
    """

    name = "broker"

    def __init__(self, port: int, log_path: Path):
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict | None:
        return None

    async def start(self, timeout: float = 15.0) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            if accepts_connections(self.port):
                return
            await asyncio.sleep(0.05)
        await self.stop()
        pytest.fail(f"{self.name} did not listen on port {self.port} within {timeout}s:\n{self.log()}")

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, 10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
