"""Service lifecycle: start/shutdown order, idempotent shutdown, unused components, fan-out, connectors, plugins."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from otelml.component import Component, CreateSettings, Kind
from otelml.config import parse
from otelml.configmodel import ComponentConfig
from otelml.confmap import expand
from otelml.consumer import FanOut
from otelml.errors import PermanentError, RetryableError
from otelml.pdata import Signal
from otelml.registry import Factory, Registry
from otelml.service import Service, StartError

NO_METRICS = {"metrics": {"level": "none"}}


class RecorderConfig(ComponentConfig):
    mutates: bool = False
    fail_start: bool = False


class Recorder(Component):
    """A component of any kind that writes its creation, start and shutdown in a shared journal.

    It keeps what it consumes and passes it on to ``consumers`` (by signal), if any.
    """

    def __init__(self, journal: list, settings: CreateSettings, config: RecorderConfig, consumers: dict | None = None):
        self.name = f"{settings.kind.value} {settings.id}"
        self.journal = journal
        self.config = config
        self.consumers = consumers or {}
        self.mutates_data = config.mutates
        self.received = []
        journal.append(("create", self.name))

    async def start(self, host) -> None:
        if self.config.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(("start", self.name))

    async def shutdown(self) -> None:
        self.journal.append(("shutdown", self.name))

    async def consume(self, batch) -> None:
        self.received.append(batch)
        if self.consumers:
            await self.consumers[Signal.of(batch)].consume(batch)


class Journal(list):
    """Lifecycle events in order, and the components created, by name."""

    def of(self, action: str) -> list[str]:
        return [name for event, name in self if event == action]


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def registry(journal) -> Registry:
    """The real factories plus a ``recorder`` of every kind."""
    every_signal = frozenset(Signal)
    registry = Registry.default()
    for kind, create in (
        (Kind.RECEIVER, lambda s, c, consumers: Recorder(journal, s, c, consumers)),
        (Kind.PROCESSOR, lambda s, c, signal, next_consumer: Recorder(journal, s, c, {signal: next_consumer})),
        (Kind.EXPORTER, lambda s, c: Recorder(journal, s, c)),
        (Kind.CONNECTOR, lambda s, c, consumers: Recorder(journal, s, c, consumers)),
        (Kind.EXTENSION, lambda s, c: Recorder(journal, s, c)),
    ):
        registry.add(
            Factory(
                "recorder",
                kind,
                RecorderConfig,
                create,
                signals=every_signal,
                connects=frozenset((s, s) for s in Signal) if kind is Kind.CONNECTOR else frozenset(),
            )
        )
    return registry


def service_of(document: dict, registry: Registry) -> Service:
    return Service(parse(expand(document), registry), registry)


def component(service: Service, name: str):
    """A created component by its journal name, e.g. ``exporter recorder/x``."""
    for step in service.graph.start_order():
        if getattr(step.component, "name", None) == name:
            return step.component
    raise KeyError(name)


def spans(count: int):
    batch = Signal.TRACES.request_type()
    scope = batch.resource_spans.add().scope_spans.add()
    for number in range(count):
        scope.spans.add(name=f"span {number}")
    return batch


ONE_PIPELINE = {
    "extensions": {"recorder/ext": {}, "recorder/idle": {}},
    "receivers": {"recorder/a": {}, "recorder/b": {}, "recorder/unused": {}},
    "processors": {"recorder/p1": {}, "recorder/p2": {}, "recorder/unused": {}},
    "exporters": {"recorder/x": {}, "recorder/unused": {}},
    "connectors": {"recorder/unused_connector": {}},
    "service": {
        "extensions": ["recorder/ext"],
        "pipelines": {
            "traces": {
                "receivers": ["recorder/a", "recorder/b"],
                "processors": ["recorder/p1", "recorder/p2"],
                "exporters": ["recorder/x"],
            }
        },
        "telemetry": NO_METRICS,
    },
}


async def test_start_order_and_reverse_shutdown_order(registry, journal):
    service = service_of(ONE_PIPELINE, registry)
    await service.start()
    await service.shutdown()
    expected = [
        "extension recorder/ext",
        "exporter recorder/x",
        "processor recorder/p2",
        "processor recorder/p1",
        "receiver recorder/a",
        "receiver recorder/b",
    ]
    assert journal.of("start") == expected
    assert journal.of("shutdown") == list(reversed(expected))


async def test_components_defined_but_unused_are_never_created(registry, journal):
    service = service_of(ONE_PIPELINE, registry)
    await service.start()
    await service.shutdown()
    assert not [name for name in journal.of("create") if "unused" in name or "idle" in name]
    assert len(journal.of("create")) == len(journal.of("start")) == 6


async def test_shutdown_is_safe_without_start_and_twice(registry, journal):
    idle = service_of(ONE_PIPELINE, registry)
    await idle.shutdown()
    await idle.shutdown()
    assert journal.of("start") == journal.of("shutdown") == []
    service = service_of(ONE_PIPELINE, registry)
    await service.start()
    await service.shutdown()
    await service.shutdown()
    assert len(journal.of("shutdown")) == 6


async def test_a_failed_start_shuts_down_what_already_started(registry, journal):
    document = {**ONE_PIPELINE, "processors": {"recorder/p1": {"fail_start": True}, "recorder/p2": {}}}
    service = service_of(document, registry)
    with pytest.raises(StartError, match="^processor recorder/p1: cannot start in pipeline traces: .*cannot start$"):
        await service.start()
    assert journal.of("start") == ["extension recorder/ext", "exporter recorder/x", "processor recorder/p2"]
    # The one that failed is shut down too: what it had started before failing (a server) must not outlive it.
    assert journal.of("shutdown") == [
        "processor recorder/p1",
        "processor recorder/p2",
        "exporter recorder/x",
        "extension recorder/ext",
    ]
    assert service.state == "stopped"


async def test_every_real_component_shuts_down_safely_without_start_and_twice(tmp_path):
    local = {"endpoint": "127.0.0.1:0"}
    document = {
        "extensions": {"health_check": local},
        "receivers": {"otlp": {"protocols": {"grpc": local, "http": local}}},
        "processors": {"batch": {}},
        "exporters": {
            "debug": {},
            "file": {"path": str(tmp_path / "out.jsonl")},
            "otlp": {"endpoint": "127.0.0.1:1", "tls": {"insecure": True}},
            "otlphttp": {"endpoint": "http://127.0.0.1:1"},
        },
        "connectors": {"forward": {}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "logs": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["forward", "debug"]},
                "logs/out": {"receivers": ["forward"], "exporters": ["file", "otlp", "otlphttp"]},
            },
            "telemetry": NO_METRICS,
        },
    }
    service = service_of(document, Registry.default())
    components = [step.component for step in service.graph.start_order()]
    assert len(components) == 8
    for created in components:
        await created.shutdown()
        await created.shutdown()
    # Started, the same components stop cleanly twice too.
    fresh = service_of(document, Registry.default())
    await fresh.start()
    await fresh.shutdown()
    await fresh.shutdown()


# Fan-out


class Sink:
    mutates_data = False

    def __init__(self, mutates: bool = False, error: Exception | None = None):
        self.mutates_data = mutates
        self.error = error
        self.received = []

    async def consume(self, batch) -> None:
        self.received.append(batch)
        if self.mutates_data:
            del batch.resource_spans[:]  # what a mutating processor might do
        if self.error is not None:
            raise self.error


async def test_fan_out_copies_for_mutating_consumers_and_shares_the_original_with_readers():
    readers, mutators = [Sink(), Sink()], [Sink(mutates=True), Sink(mutates=True)]
    batch = spans(3)
    await FanOut([mutators[0], readers[0], mutators[1], readers[1]]).consume(batch)
    assert all(r.received[0] is batch for r in readers)
    assert all(m.received[0] is not batch for m in mutators)
    assert mutators[0].received[0] is not mutators[1].received[0]
    assert len(batch.resource_spans) == 1  # the mutators' changes did not reach the readers


async def test_fan_out_hands_the_original_to_the_last_mutator_when_no_reader_shares_it():
    first, last = Sink(mutates=True), Sink(mutates=True)
    batch = spans(1)
    fan_out = FanOut([first, last])
    assert fan_out.mutates_data
    await fan_out.consume(batch)
    assert first.received[0] is not batch
    assert last.received[0] is batch
    assert not FanOut([Sink(), Sink()]).mutates_data


@pytest.mark.parametrize(
    ("errors", "raised"),
    [
        ([PermanentError("a"), PermanentError("b")], PermanentError),
        ([PermanentError("a"), RetryableError("b")], RetryableError),
        ([None, RuntimeError("b")], RuntimeError),
    ],
)
async def test_fan_out_is_permanent_only_when_every_failure_is(errors, raised):
    sinks = [Sink(error=e) for e in errors]
    with pytest.raises(raised):
        await FanOut(sinks).consume(spans(1))
    assert all(len(s.received) == 1 for s in sinks)  # every branch was tried


async def test_pipeline_fan_out_gives_only_the_mutating_exporter_a_copy(registry):
    document = {
        "receivers": {"recorder": {}},
        "exporters": {"recorder/reader1": {}, "recorder/reader2": {}, "recorder/writer": {"mutates": True}},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["recorder"], "exporters": ["recorder/reader1", "recorder/writer", "recorder/reader2"]}
            },
            "telemetry": NO_METRICS,
        },
    }
    service = service_of(document, registry)
    await service.start()
    batch = spans(2)
    await component(service, "receiver recorder").consumers[Signal.TRACES].consume(batch)
    await service.shutdown()
    assert component(service, "exporter recorder/reader1").received[0] is batch
    assert component(service, "exporter recorder/reader2").received[0] is batch
    copy = component(service, "exporter recorder/writer").received[0]
    assert copy is not batch and copy == batch


# Connectors


def joined_pipelines(connector: str) -> dict:
    return {
        "receivers": {"recorder": {}},
        "processors": {"recorder/in": {}, "recorder/out": {}},
        "exporters": {"recorder/x": {}},
        "connectors": {connector: {}},
        "service": {
            "pipelines": {
                "traces/in": {"receivers": ["recorder"], "processors": ["recorder/in"], "exporters": [connector]},
                "traces/out": {"receivers": [connector], "processors": ["recorder/out"], "exporters": ["recorder/x"]},
            },
            "telemetry": NO_METRICS,
        },
    }


async def test_forward_connector_joins_two_pipelines(registry):
    service = service_of(joined_pipelines("forward"), registry)
    await service.start()
    batch = spans(4)
    await component(service, "receiver recorder").consumers[Signal.TRACES].consume(batch)
    await service.shutdown()
    assert component(service, "processor recorder/in").received == [batch]
    assert component(service, "processor recorder/out").received == [batch]
    assert component(service, "exporter recorder/x").received == [batch]


async def test_a_connector_starts_after_the_pipeline_it_feeds_and_stops_before_it(registry, journal):
    service = service_of(joined_pipelines("recorder/link"), registry)
    await service.start()
    await service.shutdown()
    expected = [
        "exporter recorder/x",
        "processor recorder/out",
        "connector recorder/link",
        "processor recorder/in",
        "receiver recorder",
    ]
    assert journal.of("start") == expected
    assert journal.of("shutdown") == list(reversed(expected))


# Entry points


def entry_point(name: str, value: str, load):
    return SimpleNamespace(name=name, value=value, load=load)


def test_default_registry_discovers_third_party_factories_and_rejects_wrong_objects(monkeypatch, caplog):
    plugin = Factory(
        "thirdparty",
        Kind.PROCESSOR,
        RecorderConfig,
        lambda s, c, signal, n: Recorder([], s, c, {signal: n}),
        signals=frozenset({Signal.LOGS}),
    )
    wrong_kind = Factory("misfiled", Kind.EXTENSION, RecorderConfig, lambda s, c: Recorder([], s, c))

    def broken():
        raise ImportError("no module named otelml_broken")

    offered = {
        "otelml.processors": [entry_point("thirdparty", "otelml_thirdparty:factory", lambda: plugin)],
        "otelml.exporters": [
            entry_point("notafactory", "otelml_bad:thing", lambda: "a string"),
            entry_point("misfiled", "otelml_bad:misfiled", lambda: wrong_kind),
            entry_point("broken", "otelml_broken:factory", broken),
        ],
    }
    monkeypatch.setattr("otelml.registry.entry_points", lambda group: offered.get(group, []))
    registry_log = logging.getLogger("otelml.registry")
    registry_log.addHandler(caplog.handler)  # the service's logging may stop propagation to the root
    try:
        registry = Registry.default()
    finally:
        registry_log.removeHandler(caplog.handler)
    assert registry.get(Kind.PROCESSOR, "thirdparty") is plugin
    assert registry.get(Kind.EXPORTER, "notafactory") is None
    assert registry.get(Kind.EXPORTER, "misfiled") is None
    assert registry.get(Kind.EXTENSION, "misfiled") is None
    assert registry.get(Kind.EXPORTER, "debug") is not None  # the built-ins are still there
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for value in ("otelml_bad:thing", "otelml_bad:misfiled"):
        assert any(value in e and "otelml.exporters" in e and "factory" in e for e in errors), errors
    assert any("otelml_broken:factory" in e and "no module named otelml_broken" in e for e in errors)
    config = parse(
        expand(
            {
                "receivers": {"otlp": {"protocols": {"grpc": {}}}},
                "processors": {"thirdparty": {}},
                "exporters": {"debug": {}},
                "service": {"pipelines": {"logs": {"receivers": ["otlp"], "processors": ["thirdparty"], "exporters": ["debug"]}}},
            }
        ),
        registry,
    )
    assert [str(p) for p in config.pipelines[next(iter(config.pipelines))].processors] == ["thirdparty"]
