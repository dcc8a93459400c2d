"""Component factories and the registry that finds them.

A factory ties a component type to its config model and create function.
Built-in components are listed in :data:`BUILTIN_FACTORIES`; third-party
packages add theirs through the entry-point groups ``otelml.receivers``,
``otelml.processors``, ``otelml.exporters``, ``otelml.extensions`` and
``otelml.connectors``, each entry naming a :class:`Factory` object.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import logging
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points

from otelml.component import TYPE_PATTERN, Kind
from otelml.configmodel import ComponentConfig
from otelml.pdata import Signal
from otelml.telemetry import Metric

log = logging.getLogger(__name__)

# module:attribute of each built-in factory, imported when the registry is built.
BUILTIN_FACTORIES = (
    "otelml.receivers.otlp.factory:factory",
    "otelml.receivers.kafka.factory:factory",
    "otelml.receivers.mqtt.factory:factory",
    "otelml.processors.batch.factory:factory",
    "otelml.processors.anomaly.factory:factory",
    "otelml.processors.redaction.factory:factory",
    "otelml.processors.memory_limiter.factory:factory",
    "otelml.processors.drain.factory:factory",
    "otelml.exporters.debug.factory:factory",
    "otelml.exporters.file.factory:factory",
    "otelml.exporters.otlp.factory:factory",
    "otelml.exporters.otlphttp.factory:factory",
    "otelml.exporters.kafka.factory:factory",
    "otelml.exporters.prometheus.factory:factory",
    "otelml.exporters.alertmanager.factory:factory",
    "otelml.extensions.health_check.factory:factory",
    "otelml.extensions.file_storage.factory:factory",
    "otelml.extensions.bearertokenauth.factory:factory",
    "otelml.extensions.zpages.factory:factory",
    "otelml.connectors.forward.factory:factory",
    "otelml.connectors.anomaly_alerts.factory:factory",
    "otelml.connectors.anomaly_metrics.factory:factory",
)


@dataclasses.dataclass(frozen=True)
class Factory:
    """How to configure and create one component type.

    ``create`` is called as:

    - receiver: ``create(settings, config, consumers: dict[Signal, Consumer])``
    - processor: ``create(settings, config, signal, next_consumer)``
    - exporter: ``create(settings, config)``; the result consumes every signal
      in ``signals``
    - connector: ``create(settings, config, consumers: dict[Signal, Consumer])``;
      the result consumes the input signals of ``connects``
    - extension: ``create(settings, config)``
    """

    type: str
    kind: Kind
    config_class: builtins.type[ComponentConfig]
    create: Callable
    signals: frozenset[Signal] = frozenset()
    # Connectors only: the (input, output) signal pairs they can join.
    connects: frozenset[tuple[Signal, Signal]] = frozenset()
    stability: str = "alpha"
    # The component's own internal metrics, declared in its metadata.py (see CONTRIBUTING.md).
    metrics: tuple[Metric, ...] = ()

    def __post_init__(self):
        if not TYPE_PATTERN.match(self.type):
            raise ValueError(f"invalid component type {self.type!r}")


class Registry:
    """Factories by kind and type."""

    def __init__(self, factories: Iterable[Factory] = ()):
        self._factories: dict[Kind, dict[str, Factory]] = {kind: {} for kind in Kind}
        for factory in factories:
            self.add(factory)

    def add(self, factory: Factory) -> None:
        by_type = self._factories[factory.kind]
        if factory.type in by_type and by_type[factory.type] is not factory:
            raise ValueError(f"duplicate {factory.kind.value} type {factory.type!r}")
        by_type[factory.type] = factory

    def get(self, kind: Kind, type_: str) -> Factory | None:
        return self._factories[kind].get(type_)

    def factory(self, kind: Kind, type_: str) -> Factory:
        """The factory of a type the config check has already found; ``KeyError`` when there is none."""
        return self._factories[kind][type_]

    def types(self, kind: Kind) -> list[str]:
        return sorted(self._factories[kind])

    def all(self) -> list[Factory]:
        return [f for kind in Kind for _, f in sorted(self._factories[kind].items())]

    @classmethod
    def default(cls) -> Registry:
        """The built-in components plus those installed through entry points."""
        registry = cls([_load(target) for target in BUILTIN_FACTORIES])
        for kind in Kind:
            for entry in entry_points(group=f"otelml.{kind.section}"):
                try:
                    factory = entry.load()
                except Exception as error:  # a broken plugin must not stop the service
                    log.error("cannot load %s %s from entry point %s: %s", kind.value, entry.name, entry.value, error)
                    continue
                if not isinstance(factory, Factory) or factory.kind is not kind:
                    log.error("entry point %s in otelml.%s is not a factory of kind %s", entry.value, kind.section, kind.value)
                    continue
                registry.add(factory)
        return registry


def _load(target: str) -> Factory:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
