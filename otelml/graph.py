"""The pipeline graph: components created from a Config and wired together.

Exporters and connectors are created once per ID and shared by every
pipeline that names them; processors are created per pipeline, as in the
collector; receivers are created once per ID and fan their data out to every
pipeline of the signal that lists them. Components configured but used by no
pipeline are not created.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import NamedTuple

from otelml.component import Component, ComponentID, CreateSettings, Kind, component_logger
from otelml.config import Config, Pipeline, PipelineID
from otelml.consumer import Consumer, fan_out, refusal
from otelml.errors import RetryableError
from otelml.partitions import PartitionOwner, detaches_context, is_owner
from otelml.pdata import Batch, Signal, count_items
from otelml.registry import Registry
from otelml.telemetry import PROCESSOR_INCOMING, PROCESSOR_OUTGOING, UNRECORDED, Telemetry


class CountingConsumer:
    """Counts items entering a consumer into a processor's incoming/outgoing metric."""

    def __init__(self, consumer: Consumer, counter, mutates_data: bool | None = None):
        self.consumer = consumer
        self.counter = counter
        self.mutates_data = consumer.mutates_data if mutates_data is None else mutates_data

    def refusal(self, size: int = 0) -> RetryableError | None:
        return refusal(self.consumer, size)

    async def consume(self, batch: Batch) -> None:
        # Counting walks the whole batch: not for a metric the telemetry level leaves out.
        if self.counter is not UNRECORDED:
            self.counter.inc(count_items(batch))
        await self.consumer.consume(batch)


class Step(NamedTuple):
    """One component in the start order; ``pipeline`` is set for processors, which exist once per pipeline."""

    kind: Kind
    id: ComponentID
    component: Component
    pipeline: PipelineID | None = None

    def logger(self) -> logging.LoggerAdapter:
        """The logger of the component, as it logs itself."""
        return component_logger(self.kind, self.id)

    def where(self) -> str:
        """`` in pipeline traces`` for a processor, else nothing: to follow a log message."""
        return f" in pipeline {self.pipeline}" if self.pipeline is not None else ""


@dataclasses.dataclass
class Graph:
    """Created components, grouped in the order they start."""

    extensions: dict[ComponentID, Component]
    exporters: dict[ComponentID, Component]
    connectors: dict[ComponentID, Component]
    # Per pipeline, its processors from first to last.
    processors: dict[PipelineID, list[Component]]
    receivers: dict[ComponentID, Component]
    # Per pipeline, the IDs of its processors, in the same order.
    processor_ids: dict[PipelineID, list[ComponentID]] = dataclasses.field(default_factory=dict)

    # Pipelines with their connector edges, upstream first (see build()).
    pipeline_order: list[PipelineID] = dataclasses.field(default_factory=list)
    pipeline_connectors: dict[PipelineID, list[ComponentID]] = dataclasses.field(default_factory=dict)
    pipelines: dict[PipelineID, Pipeline] = dataclasses.field(default_factory=dict)

    def partition_owners(self, receiver_id: ComponentID, signal: Signal) -> list[PartitionOwner]:
        """The components that keep state per source partition in the pipelines ``receiver_id`` feeds with
        ``signal`` (through connectors too), in pipeline order.

        Raises ``ValueError`` when a component that detaches the context (see
        :mod:`otelml.partitions`) comes before one of them: it could not tell
        which partition a record came from.
        """
        owners: list[PartitionOwner] = []
        visited: set[PipelineID] = set()

        def visit(pipeline: Pipeline, detached_by: str | None) -> None:
            if pipeline.id in visited:
                return
            visited.add(pipeline.id)
            stages = [(f"processor {i}", c) for i, c in zip(pipeline.processors, self.processors[pipeline.id])]
            stages += [
                (
                    f"{'connector' if i in self.connectors else 'exporter'} {i}",
                    self.connectors[i] if i in self.connectors else self.exporters[i],
                )
                for i in pipeline.exporters
            ]
            for name, component in stages:
                if is_owner(component):
                    if detached_by:
                        raise ValueError(
                            f"{name} keeps state per partition of receiver {receiver_id}, but {detached_by} hands data on "
                            f"from a task of its own before it, so it cannot tell which partition a record came from: "
                            f"remove it from the pipeline (a batch processor: or set its timeout to 0), or keep no state "
                            f"per partition in {name} (an anomaly processor: state.changelog.enabled: false)"
                        )
                    if component not in owners:
                        owners.append(component)
                if detaches_context(component) and not detached_by:
                    detached_by = f"{name} in pipeline {pipeline.id}"
            for connector_id in pipeline.exporters:
                if connector_id in self.connectors:
                    for downstream in self.pipelines.values():
                        if connector_id in downstream.receivers:
                            visit(downstream, detached_by)

        for pipeline in self.pipelines.values():
            if pipeline.id.signal is signal and receiver_id in pipeline.receivers:
                visit(pipeline, None)
        return owners

    def start_order(self) -> list[Step]:
        """Extensions, exporters, then pipelines from the last downstream to the first
        upstream (each connector just before the pipelines that feed it), receivers last.
        Shutdown runs the same list backwards, so data always drains downstream."""
        order = [Step(Kind.EXTENSION, i, c) for i, c in self.extensions.items()]
        order += [Step(Kind.EXPORTER, i, c) for i, c in self.exporters.items()]
        added: set[ComponentID] = set()
        for pipeline_id in reversed(self.pipeline_order):
            for connector_id in self.pipeline_connectors.get(pipeline_id, []):
                if connector_id not in added:
                    added.add(connector_id)
                    order.append(Step(Kind.CONNECTOR, connector_id, self.connectors[connector_id]))
            chain = zip(self.processor_ids[pipeline_id], self.processors[pipeline_id])
            order += [Step(Kind.PROCESSOR, i, c, pipeline_id) for i, c in reversed(list(chain))]
        order += [Step(Kind.RECEIVER, i, c) for i, c in self.receivers.items()]
        return order


def build(config: Config, registry: Registry, telemetry: Telemetry) -> Graph:
    def settings(kind: Kind, component_id: ComponentID) -> CreateSettings:
        return CreateSettings(component_id, kind, telemetry)

    def factory(kind: Kind, component_id: ComponentID):
        return registry.get(kind, component_id.type)

    def component_config(kind: Kind, component_id: ComponentID):
        return config.components[kind][component_id]

    extensions = {
        i: factory(Kind.EXTENSION, i).create(settings(Kind.EXTENSION, i), component_config(Kind.EXTENSION, i))
        for i in config.extensions
    }
    exporters = {
        i: factory(Kind.EXPORTER, i).create(settings(Kind.EXPORTER, i), component_config(Kind.EXPORTER, i))
        for i in config.used(Kind.EXPORTER)
    }
    # Connectors feed pipelines that start with them, so those pipelines are
    # built first: pipeline entries are created on demand, recursively.
    connectors: dict[ComponentID, Component] = {}
    processors: dict[PipelineID, list[Component]] = {}
    entries: dict[PipelineID, Consumer] = {}

    def exporter_consumer(pipeline: Pipeline, component_id: ComponentID) -> Consumer:
        if component_id in config.components[Kind.CONNECTOR]:
            return connector(component_id)
        return exporters[component_id]

    def connector(component_id: ComponentID):
        if component_id not in connectors:
            outputs: dict[Signal, list[Consumer]] = {}
            for pipeline in config.pipelines.values():
                if component_id in pipeline.receivers:
                    outputs.setdefault(pipeline.id.signal, []).append(entry(pipeline))
            consumers = {signal: fan_out(targets) for signal, targets in outputs.items()}
            connectors[component_id] = factory(Kind.CONNECTOR, component_id).create(
                settings(Kind.CONNECTOR, component_id), component_config(Kind.CONNECTOR, component_id), consumers
            )
        return connectors[component_id]

    def entry(pipeline: Pipeline) -> Consumer:
        if pipeline.id not in entries:
            exporters_of_pipeline = fan_out([exporter_consumer(pipeline, e) for e in pipeline.exporters])
            entries[pipeline.id], processors[pipeline.id] = build_chain(
                config, registry, telemetry, pipeline, exporters_of_pipeline
            )
        return entries[pipeline.id]

    receiver_outputs: dict[ComponentID, dict[Signal, list[Consumer]]] = {}
    for pipeline in config.pipelines.values():
        for receiver_id in pipeline.receivers:
            if receiver_id in config.components[Kind.CONNECTOR]:
                continue
            receiver_outputs.setdefault(receiver_id, {}).setdefault(pipeline.id.signal, []).append(entry(pipeline))
    for pipeline in config.pipelines.values():
        entry(pipeline)
    receivers = {
        i: factory(Kind.RECEIVER, i).create(
            settings(Kind.RECEIVER, i),
            component_config(Kind.RECEIVER, i),
            {signal: fan_out(targets) for signal, targets in outputs.items()},
        )
        for i, outputs in receiver_outputs.items()
    }
    connector_ids = config.components[Kind.CONNECTOR]
    pipeline_connectors = {
        pipeline.id: [e for e in pipeline.exporters if e in connector_ids] for pipeline in config.pipelines.values()
    }
    processor_ids = {pipeline.id: list(pipeline.processors) for pipeline in config.pipelines.values()}
    return Graph(
        extensions,
        exporters,
        connectors,
        processors,
        receivers,
        processor_ids,
        topological_order(config),
        pipeline_connectors,
        dict(config.pipelines),
    )


def build_chain(
    config: Config, registry: Registry, telemetry: Telemetry, pipeline: Pipeline, next_consumer: Consumer
) -> tuple[Consumer, list[Component]]:
    """``pipeline``'s processors in front of ``next_consumer``, each counted as the collector counts them.

    Returns the chain's entry and its processors, first to last. The service
    builds every pipeline with it, ``otelml replay`` the pipelines it replays.
    """
    signal = pipeline.id.signal
    chain: list[Component] = []
    # A stage may change data in place when it, or anything after it,
    # does (a processor can pass its input batch on unchanged).
    mutates_downstream = next_consumer.mutates_data
    for processor_id in reversed(pipeline.processors):
        labels = (str(processor_id), signal.value)
        outgoing = CountingConsumer(next_consumer, telemetry.metric(PROCESSOR_OUTGOING).labels(*labels))
        processor = registry.factory(Kind.PROCESSOR, processor_id.type).create(
            CreateSettings(processor_id, Kind.PROCESSOR, telemetry),
            config.components[Kind.PROCESSOR][processor_id],
            signal,
            outgoing,
        )
        chain.insert(0, processor)
        mutates_downstream = mutates_downstream or processor.mutates_data
        next_consumer = CountingConsumer(processor, telemetry.metric(PROCESSOR_INCOMING).labels(*labels), mutates_downstream)
    return next_consumer, chain


def topological_order(config: Config) -> list[PipelineID]:
    """Pipelines ordered so that one feeding another through a connector comes first.

    The config check has already refused cycles.
    """
    connector_ids = config.components[Kind.CONNECTOR]
    downstream = {
        p.id: [q.id for q in config.pipelines.values() for c in p.exporters if c in connector_ids and c in q.receivers]
        for p in config.pipelines.values()
    }
    order: list[PipelineID] = []
    visited: set[PipelineID] = set()

    def visit(pipeline_id: PipelineID):
        if pipeline_id in visited:
            return
        visited.add(pipeline_id)
        for target in downstream[pipeline_id]:
            visit(target)
        order.append(pipeline_id)

    for pipeline_id in config.pipelines:
        visit(pipeline_id)
    return list(reversed(order))
