"""The whole service configuration, parsed and validated as the collector does.

:func:`parse` turns an expanded config map into typed component configs and
pipelines, and reports every problem at once, each with its ``::`` path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from otelml.checkpoint import CheckpointConfig
from otelml.component import ComponentID, Kind
from otelml.configmodel import Checked, ComponentConfig, Duration, Endpoint, check, listen_endpoints, parse_endpoint, sections
from otelml.confmap import ConfigError
from otelml.listen import endpoints_clash
from otelml.pdata import Signal
from otelml.registry import Registry

TOP_LEVEL_KEYS = ("receivers", "processors", "exporters", "connectors", "extensions", "service")


class PrometheusPull(ComponentConfig):
    host: str = "localhost"
    port: int = Field(8888, ge=0, le=65535)


class PullExporter(ComponentConfig):
    prometheus: PrometheusPull


class PullReader(ComponentConfig):
    exporter: PullExporter


class MetricReader(ComponentConfig):
    pull: PullReader


class MetricsTelemetry(ComponentConfig):
    level: Literal["none", "basic", "normal", "detailed"] = "normal"
    # The short form, as older collectors had it; ``readers`` is the current one.
    address: Endpoint | None = None
    readers: list[MetricReader] | None = None  # unset: localhost:8888; [] records without serving

    def validate_config(self) -> list[str]:
        if self.address and self.readers:
            return ["address: set either address or readers, not both"]
        return []

    def endpoint(self) -> tuple[str, int] | None:
        """Where to serve Prometheus metrics, or None when they are off.

        ``readers: []`` records metrics without serving them, as in the collector.
        """
        if self.level == "none" or self.readers == []:
            return None
        if self.address:
            return parse_endpoint(self.address)
        if self.readers:
            prometheus = self.readers[0].pull.exporter.prometheus
            return prometheus.host, prometheus.port
        return "localhost", 8888


class LogsTelemetry(ComponentConfig):
    level: Literal["debug", "info", "warn", "error"] = "info"
    encoding: Literal["console"] = "console"


class TelemetryConfig(ComponentConfig):
    metrics: MetricsTelemetry = MetricsTelemetry()
    logs: LogsTelemetry = LogsTelemetry()


class PipelineSection(ComponentConfig):
    receivers: list[str] = []
    processors: list[str] = []
    exporters: list[str] = []


class ServiceSection(ComponentConfig):
    extensions: list[str] = []
    pipelines: dict[str, PipelineSection] = {}
    telemetry: TelemetryConfig = TelemetryConfig()
    shutdown_timeout: Duration = 30.0


@dataclasses.dataclass(frozen=True)
class PipelineID:
    signal: Signal
    name: str = ""

    def __str__(self) -> str:
        return f"{self.signal.value}/{self.name}" if self.name else self.signal.value


@dataclasses.dataclass
class Pipeline:
    id: PipelineID
    receivers: list[ComponentID]
    processors: list[ComponentID]
    exporters: list[ComponentID]


@dataclasses.dataclass
class Config:
    components: dict[Kind, dict[ComponentID, ComponentConfig]]
    pipelines: dict[PipelineID, Pipeline]
    extensions: list[ComponentID]
    telemetry: TelemetryConfig
    shutdown_timeout: float

    def used(self, kind: Kind) -> list[ComponentID]:
        """Components of ``kind`` that some pipeline (or the service) uses, in first-use order."""
        if kind is Kind.EXTENSION:
            return list(self.extensions)
        section = {Kind.RECEIVER: "receivers", Kind.PROCESSOR: "processors", Kind.EXPORTER: "exporters"}
        seen: dict[ComponentID, None] = {}
        for pipeline in self.pipelines.values():
            if kind is Kind.CONNECTOR:
                ids = pipeline.receivers + pipeline.exporters
            else:
                ids = getattr(pipeline, section[kind])
            for component_id in ids:
                if component_id in self.components[kind]:
                    seen[component_id] = None
        return list(seen)


def parse(raw: dict[str, Any], registry: Registry) -> Config:
    """Validate ``raw`` (already expanded and merged); raise ConfigError listing every problem.

    Every problem is found in one pass: a component with problems still counts
    as configured (pipelines naming it get no follow-on "not configured"), and
    the settings of it that could be read are checked further (extension
    references, the signals of its pipelines).
    """
    problems: list[str] = []
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"{key}: unknown top-level key (known: {', '.join(TOP_LEVEL_KEYS)})")
    checked = {kind: _parse_section(raw.get(kind.section), kind, registry, problems) for kind in Kind}
    _check_ambiguous_ids(checked, problems)
    service = _parse_service(raw.get("service"), problems)
    pipelines: dict[PipelineID, Pipeline] = {}
    extensions: list[ComponentID] = []
    if service is not None:
        extensions = _references(service.extensions, "service::extensions", checked[Kind.EXTENSION], "extension", problems)
        problems += _extension_reference_problems(checked, extensions)
        for name, section in service.pipelines.items():
            pipeline = _parse_pipeline(name, section, checked, registry, problems)
            if pipeline:
                pipelines[pipeline.id] = pipeline
        if not service.pipelines:
            problems.append("service::pipelines: at least one pipeline must be configured")
        _check_connectors(pipelines, checked[Kind.CONNECTOR], registry, problems)
        _check_cycles(pipelines, checked[Kind.CONNECTOR], problems)
        problems += _signal_problems(pipelines, checked)
        problems += _clashing_endpoint_problems(checked, pipelines, extensions, service.telemetry)
        problems += _shared_checkpoint_problems(checked, pipelines)
    if problems or service is None:
        raise ConfigError(problems)
    # Without problems, every config was read whole.
    components = {
        kind: {i: c.config for i, c in section.items() if c is not None and c.config is not None}
        for kind, section in checked.items()
    }
    return Config(components, pipelines, extensions, service.telemetry, service.shutdown_timeout)


# Per kind, every configured component ID: its settings as far as they could be checked, None for an unknown type.
Checks = dict[ComponentID, Checked[ComponentConfig] | None]


def _parse_section(section: Any, kind: Kind, registry: Registry, problems: list[str]) -> Checks:
    parsed: Checks = {}
    if section is None:
        return parsed
    if not isinstance(section, dict):
        problems.append(f"{kind.section}: must be a map of component IDs to their settings")
        return parsed
    for key, settings in section.items():
        path = f"{kind.section}::{key}"
        try:
            component_id = ComponentID.parse(key)
        except ValueError as error:
            problems.append(f"{path}: {error}")
            continue
        factory = registry.get(kind, component_id.type)
        if factory is None:
            known = ", ".join(registry.types(kind)) or "none"
            problems.append(f'{path}: unknown {kind.value} type "{component_id.type}" (known: {known})')
            parsed[component_id] = None
            continue
        parsed[component_id] = checked = check(factory.config_class, settings)
        problems += [f"{path}::{line}" for line in checked.problems]
    return parsed


def _parse_service(section: Any, problems: list[str]) -> ServiceSection | None:
    if section is None:
        problems.append("service: missing; it must name at least one pipeline")
        return None
    checked = check(ServiceSection, section)
    problems += [f"service::{line}" for line in checked.problems]
    return checked.config


def _references(names: list[str], path: str, configured: dict, what: str, problems: list[str]) -> list[ComponentID]:
    ids = []
    for name in names:
        try:
            component_id = ComponentID.parse(name)
        except ValueError as error:
            problems.append(f"{path}: {error}")
            continue
        if component_id not in configured:
            problems.append(f'{path}: references {what} "{name}" which is not configured')
            continue
        if component_id in ids:
            problems.append(f'{path}: references {what} "{name}" more than once')
            continue
        ids.append(component_id)
    return ids


def _extension_reference_problems(checked: dict[Kind, Checks], enabled: list[ComponentID]) -> list[str]:
    """A problem for each setting (``auth::authenticator``, ``sending_queue::storage``, ...) naming an
    extension that is not configured or not enabled in service::extensions."""
    problems = []
    for kind, section in checked.items():
        for component_id, component in _readable(section).items():
            found = []
            for prefix, part in sections(component.config) if component.config is not None else ():
                for field, reference in part.extension_references() if isinstance(part, ComponentConfig) else ():
                    extension_id = ComponentID.parse(reference)
                    if extension_id not in checked[Kind.EXTENSION]:
                        found.append(f'{prefix}{field}: references extension "{extension_id}" which is not configured')
                    elif extension_id not in enabled:
                        found.append(
                            f'{prefix}{field}: references extension "{extension_id}" which is not enabled in service::extensions'
                        )
            problems += [f"{kind.section}::{component_id}::{problem}" for problem in component.unrelated(found)]
    return problems


def _clashing_endpoint_problems(
    checked: dict[Kind, Checks], pipelines: dict[PipelineID, Pipeline], extensions: list[ComponentID], telemetry: TelemetryConfig
) -> list[str]:
    """A problem for each server that would listen where one started before it does: it could not start.

    Servers start in the service's order: internal metrics, extensions, exporters, receivers.
    """
    servers = []
    metrics = telemetry.metrics.endpoint()
    if metrics is not None:
        servers.append(("service::telemetry::metrics", f"{metrics[0]}:{metrics[1]}"))
    used = {
        Kind.EXTENSION: extensions,
        Kind.EXPORTER: [i for pipeline in pipelines.values() for i in pipeline.exporters],
        Kind.RECEIVER: [i for pipeline in pipelines.values() for i in pipeline.receivers],
    }
    for kind, ids in used.items():
        for component_id in dict.fromkeys(ids):
            component = checked[kind].get(component_id)
            if component is None or component.config is None:
                continue
            for path, endpoint in listen_endpoints(component.config):
                if component.unrelated([f"{path}:"]):  # else refused and left at its default
                    servers.append((f"{kind.section}::{component_id}::{path}", endpoint))
    problems = []
    for index, (path, endpoint) in enumerate(servers):
        for earlier_path, earlier in servers[:index]:
            if endpoints_clash(endpoint, earlier):
                problems.append(f"{path}: {endpoint} is taken by {earlier_path} ({earlier}): one port serves one server")
                break
    return problems


def _shared_checkpoint_problems(checked: dict[Kind, Checks], pipelines: dict[PipelineID, Pipeline]) -> list[str]:
    """A problem for each checkpoint file a second processor instance would write too: it could not start.

    A processor has one instance, with state of its own, per pipeline it is in (as in the collector).
    """
    writers: dict[Path, tuple[str, PipelineID]] = {}
    problems: dict[str, None] = {}  # ordered, one for a processor in three pipelines
    for pipeline in pipelines.values():
        for component_id in pipeline.processors:
            component = checked[Kind.PROCESSOR].get(component_id)
            for path, section in sections(component.config) if component and component.config else ():
                if not isinstance(section, CheckpointConfig) or section.path is None:
                    continue
                setting = f"processors::{component_id}::{path}path"
                first_setting, first_pipeline = writers.setdefault(Path(section.path).resolve(), (setting, pipeline.id))
                if first_setting != setting:
                    problems[f"{setting}: {section.path} is already the checkpoint of {first_setting}: give each its own"] = None
                elif first_pipeline != pipeline.id:
                    problems[
                        f"{setting}: {section.path} would be written by the {component_id} of pipeline {first_pipeline} "
                        f"and by the one of pipeline {pipeline.id}: give each pipeline a processor of its own"
                    ] = None
    return list(problems)


def _readable(section: Checks) -> dict[ComponentID, Checked]:
    """The components of ``section`` whose settings could be read, if only in part."""
    return {i: c for i, c in section.items() if c is not None and c.config is not None}


def _signal_problems(pipelines: dict[PipelineID, Pipeline], checked: dict[Kind, Checks]) -> list[str]:
    """``validate_signal()`` of each component for every signal it takes in: the signal of each pipeline
    it is in (for a connector, of each pipeline it exports from)."""
    found: dict[str, None] = {}  # ordered, without repeats for a component in several pipelines
    connectors = checked[Kind.CONNECTOR]
    for pipeline in pipelines.values():
        signal = pipeline.id.signal
        for kind, ids in (
            (Kind.RECEIVER, pipeline.receivers),
            (Kind.PROCESSOR, pipeline.processors),
            (Kind.EXPORTER, pipeline.exporters),
        ):
            for component_id in ids:
                if component_id in connectors:
                    if kind is Kind.RECEIVER:
                        continue  # its input signal is that of the pipelines it exports from
                    kind = Kind.CONNECTOR
                component = _readable(checked[kind]).get(component_id)
                if component is not None and component.config is not None:
                    for problem in component.unrelated(component.config.validate_signal(signal)):
                        found[f"{kind.section}::{component_id}::{problem}"] = None
    return list(found)


def _parse_pipeline(
    name: str, section: PipelineSection, checked: dict[Kind, Checks], registry: Registry, problems: list[str]
) -> Pipeline | None:
    path = f"service::pipelines::{name}"
    signal_name, _, pipeline_name = name.partition("/")
    try:
        signal = Signal(signal_name)
    except ValueError:
        problems.append(f'{path}: unknown signal "{signal_name}" (known: traces, logs, metrics)')
        return None
    connectors = checked[Kind.CONNECTOR]
    receivers = _references(section.receivers, path, {**checked[Kind.RECEIVER], **connectors}, "receiver", problems)
    processors = _references(section.processors, path, checked[Kind.PROCESSOR], "processor", problems)
    exporters = _references(section.exporters, path, {**checked[Kind.EXPORTER], **connectors}, "exporter", problems)
    if not section.receivers:
        problems.append(f"{path}: must have at least one receiver")
    if not section.exporters:
        problems.append(f"{path}: must have at least one exporter")
    for kind, ids in ((Kind.RECEIVER, receivers), (Kind.PROCESSOR, processors), (Kind.EXPORTER, exporters)):
        for component_id in ids:
            if component_id in connectors:
                continue
            factory = registry.get(kind, component_id.type)
            if factory is not None and signal not in factory.signals:
                supported = ", ".join(sorted(s.value for s in factory.signals)) or "none"
                problems.append(f'{path}: {kind.value} "{component_id}" does not support {signal.value} (supports: {supported})')
    return Pipeline(PipelineID(signal, pipeline_name), receivers, processors, exporters)


def _check_connectors(pipelines: dict[PipelineID, Pipeline], connectors, registry: Registry, problems: list[str]) -> None:
    for connector_id in connectors:
        inputs = [p for p in pipelines.values() if connector_id in p.exporters]
        outputs = [p for p in pipelines.values() if connector_id in p.receivers]
        if not inputs and not outputs:
            continue
        path = f"connectors::{connector_id}"
        if not inputs or not outputs:
            problems.append(f"{path}: a connector must be used as an exporter in one pipeline and as a receiver in another")
            continue
        factory = registry.get(Kind.CONNECTOR, connector_id.type)
        if factory is None:
            continue  # an unknown type, reported already
        for source in inputs:
            for target in outputs:
                if (source.id.signal, target.id.signal) not in factory.connects:
                    problems.append(
                        f"{path}: cannot connect {source.id.signal.value} (pipeline {source.id}) to {target.id.signal.value} (pipeline {target.id})"
                    )


def _check_cycles(pipelines: dict[PipelineID, Pipeline], connectors, problems: list[str]) -> None:
    """Refuse pipelines that feed themselves through connectors."""
    edges = {
        p.id: {q.id for q in pipelines.values() for c in p.exporters if c in connectors and c in q.receivers}
        for p in pipelines.values()
    }
    state: dict[PipelineID, str] = {}

    def visit(pipeline_id: PipelineID, trail: list[PipelineID]) -> bool:
        state[pipeline_id] = "visiting"
        for target in sorted(edges[pipeline_id], key=str):
            if state.get(target) == "visiting":
                cycle = " -> ".join(str(p) for p in trail[trail.index(target) :] + [target])
                problems.append(f"service::pipelines: connectors form a cycle: {cycle}")
                return True
            if target not in state and visit(target, trail + [target]):
                return True
        state[pipeline_id] = "done"
        return False

    for pipeline_id in pipelines:
        if pipeline_id not in state and visit(pipeline_id, [pipeline_id]):
            return


def _check_ambiguous_ids(checked: dict[Kind, Checks], problems: list[str]) -> None:
    """A connector stands where receivers and exporters do, so it may not share their IDs."""
    for connector_id in checked[Kind.CONNECTOR]:
        for kind in (Kind.RECEIVER, Kind.EXPORTER):
            if connector_id in checked[kind]:
                problems.append(
                    f'connectors::{connector_id}: ambiguous ID: {kind.value} "{connector_id}" has the same ID; rename one of them'
                )
