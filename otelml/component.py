"""Component identity, kinds, lifecycle and what a component is given at creation."""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from otelml.telemetry import Telemetry

TYPE_PATTERN = re.compile(r"^[a-zA-Z][0-9a-zA-Z_]{0,62}$")


class Kind(str, enum.Enum):
    RECEIVER = "receiver"
    PROCESSOR = "processor"
    EXPORTER = "exporter"
    CONNECTOR = "connector"
    EXTENSION = "extension"

    @property
    def section(self) -> str:
        """The top-level config key that holds components of this kind."""
        return self.value + "s"


@dataclasses.dataclass(frozen=True, order=True)
class ComponentID:
    """``type[/name]``, e.g. ``otlp`` or ``anomaly/latency``."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: Any) -> ComponentID:
        if not isinstance(text, str) or not text:
            raise ValueError(f"invalid component ID {text!r}: must be a non-empty string")
        type_, sep, name = text.partition("/")
        if not TYPE_PATTERN.match(type_):
            raise ValueError(f"invalid component type {type_!r}: must match {TYPE_PATTERN.pattern}")
        if sep and not name.strip():
            raise ValueError(f"invalid component ID {text!r}: the name after '/' is empty")
        return cls(type_, name)

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


class Host(Protocol):
    """What a running component may ask of the service around it."""

    def get_extension(self, component_id: ComponentID) -> Any: ...

    def healthy(self) -> bool:
        """Whether the service is running without a fatal error (for the health check)."""
        ...

    def components(self) -> list[Any]:
        """Every component of the service (for extensions that look for a capability, e.g. a live view)."""
        ...

    def partition_owners(self, receiver_id: ComponentID, signal: Any) -> list[Any]:
        """The components keeping state per source partition that ``receiver_id`` feeds with ``signal``
        (see :mod:`otelml.partitions`); raises ``ValueError`` when one cannot know a batch's partition."""
        ...


class Component:
    """Lifecycle every component shares; both methods default to doing nothing.

    ``shutdown`` must be safe without ``start`` and when called twice.
    """

    async def start(self, host: Host) -> None:
        return None

    async def shutdown(self) -> None:
        return None


@dataclasses.dataclass
class CreateSettings:
    """Passed to every factory's create function."""

    id: ComponentID
    kind: Kind
    telemetry: Telemetry
    logger: logging.LoggerAdapter = dataclasses.field(init=False)

    def __post_init__(self):
        self.logger = component_logger(self.kind, self.id)


def component_logger(kind: Kind, component_id: object) -> logging.LoggerAdapter:
    """A logger whose every line names the component, as the collector's do."""
    return logging.LoggerAdapter(
        logging.getLogger(f"otelml.{kind.value}.{component_id}"),
        {"component": f"{kind.value} {component_id}"},
    )
