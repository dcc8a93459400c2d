"""Internal metrics: made from their declarations, at the configured level, and documented as declared."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from otelml import graph
from otelml.pdata import Signal
from otelml.processors.batch.metadata import SIZE_TRIGGER_SEND
from otelml.registry import Registry
from otelml.service import Service
from otelml.telemetry import CORE_METRICS, DROPPED_ITEMS, PROCESS_METRICS, UNRECORDED, Level, Metric, Telemetry, metrics_table
from tests.conftest import REPO, build_config

COMPONENT_METRIC = Metric("otelml_test_batches", "counter", "{batches}", ("processor",), "Batches seen.")
PER_KEY_METRIC = Metric("otelml_test_key_score", "gauge", "1", ("processor", "key"), "Last score per key.", Level.DETAILED)


def component_folder(factory) -> Path:
    """``otelml.processors.batch.processor`` -> ``processors/batch``."""
    parts = factory.create.__module__.split(".")
    return REPO.joinpath(*parts[1:3])


@pytest.mark.parametrize(
    "level, recorded",
    [
        (Level.NONE, set()),
        (Level.BASIC, {DROPPED_ITEMS}),
        (Level.NORMAL, {DROPPED_ITEMS, COMPONENT_METRIC}),
        (Level.DETAILED, {DROPPED_ITEMS, COMPONENT_METRIC, PER_KEY_METRIC}),
    ],
)
def test_level_decides_which_metrics_are_recorded(level, recorded):
    telemetry = Telemetry(level)
    made = {metric: telemetry.metric(metric) for metric in (DROPPED_ITEMS, COMPONENT_METRIC, PER_KEY_METRIC)}
    made[DROPPED_ITEMS].labels("batch", "logs", "shutdown").inc(2)
    made[COMPONENT_METRIC].labels("batch").inc()
    made[PER_KEY_METRIC].labels("anomaly", "checkout").set(0.5)
    assert {metric for metric, made_metric in made.items() if made_metric is not UNRECORDED} == recorded
    samples = {sample.name for family in telemetry.registry.collect() for sample in family.samples}
    assert {metric.exposed_name for metric in recorded} <= samples
    assert not {metric.exposed_name for metric in set(made) - recorded} & samples


def test_the_same_declaration_gives_the_same_metric():
    telemetry = Telemetry()
    assert telemetry.metric(COMPONENT_METRIC) is telemetry.metric(dataclasses.replace(COMPONENT_METRIC))


@pytest.mark.parametrize(
    "clash",
    [
        Metric(COMPONENT_METRIC.name, "counter", "{batches}", ("exporter",), "Batches seen."),
        Metric(COMPONENT_METRIC.name, "gauge", "{batches}", ("processor",), "Batches seen."),
        Metric(COMPONENT_METRIC.name, "counter", "{batches}", ("processor",), "Batches seen, differently."),
    ],
    ids=["labels", "kind", "description"],
)
def test_a_name_declared_twice_differently_is_refused(clash):
    telemetry = Telemetry()
    telemetry.metric(COMPONENT_METRIC)
    with pytest.raises(ValueError, match="declared twice"):
        telemetry.metric(clash)


def test_every_declared_name_is_unique():
    metrics = list(CORE_METRICS) + [metric for factory in Registry.default().all() for metric in factory.metrics]
    names = [metric.name for metric in metrics]
    assert len(names) == len(set(names))
    telemetry = Telemetry(Level.DETAILED)
    for metric in metrics:
        telemetry.metric(metric)


def test_main_readme_lists_the_core_metrics():
    assert metrics_table(CORE_METRICS) in (REPO / "README.md").read_text()
    assert metrics_table(PROCESS_METRICS) in (REPO / "README.md").read_text()


@pytest.mark.parametrize("factory", [f for f in Registry.default().all() if f.metrics], ids=lambda f: f"{f.kind.value} {f.type}")
def test_component_readme_lists_its_declared_metrics(factory):
    table = metrics_table(factory.metrics)
    readme = component_folder(factory) / "README.md"
    assert table in readme.read_text(), f"{readme.relative_to(REPO)} must have this table under '## Internal metrics':\n{table}"


def test_each_component_metadata_lists_what_it_declares():
    """A component's metadata.py lists every metric it declares in METRICS, which its factory registers."""
    for factory in Registry.default().all():
        folder = component_folder(factory)
        if not (folder / "metadata.py").exists():
            assert factory.metrics == ()
            continue
        module = importlib.import_module(f"otelml.{folder.parent.name}.{folder.name}.metadata")
        declared = {value for value in vars(module).values() if isinstance(value, Metric)}
        declared |= {
            metric
            for value in vars(module).values()
            if isinstance(value, dict)
            for metric in value.values()
            if isinstance(metric, Metric)
        }
        assert set(factory.metrics) == declared == set(module.METRICS)


def test_the_service_records_at_its_configured_level():
    def service(level: str) -> Service:
        return Service(
            build_config(
                {
                    "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
                    "processors": {"batch": {}},
                    "exporters": {"debug": {}},
                    "service": {
                        "pipelines": {"logs": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]}},
                        "telemetry": {"metrics": {"level": level, "readers": []}},
                    },
                }
            )
        )

    assert service("basic").telemetry.metric(SIZE_TRIGGER_SEND) is UNRECORDED
    assert service("normal").telemetry.metric(SIZE_TRIGGER_SEND) is not UNRECORDED


class _Sink:
    mutates_data = False

    async def consume(self, batch) -> None:
        return None


@pytest.mark.parametrize("level, counted", [("none", False), ("normal", True)])
async def test_processor_items_are_counted_only_when_their_metric_is_recorded(monkeypatch, level, counted):
    """Counting walks the whole batch: at level none nobody reads the count."""
    walks = []
    monkeypatch.setattr(graph, "count_items", lambda batch: walks.append(batch) or 1)
    config = build_config(
        {
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"batch": {}},
            "exporters": {"debug": {}},
            "service": {"pipelines": {"logs": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]}}},
        }
    )
    pipeline = next(iter(config.pipelines.values()))
    entry, _ = graph.build_chain(config, Registry.default(), Telemetry(Level.parse(level)), pipeline, _Sink())
    await entry.consume(Signal.LOGS.request_type())
    assert bool(walks) is counted
