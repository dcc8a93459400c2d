"""Typed component configuration, as the collector's config structs.

Each component declares a pydantic model derived from :class:`ComponentConfig`.
Defaults live in the model; the user's YAML is validated on top of them;
unknown keys are errors; ``validate_config()`` adds the checks that span fields,
and ``validate_signal()`` those that depend on the pipelines a component is in.
(``validate`` itself is pydantic's, so the hooks have names of their own.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError

if TYPE_CHECKING:
    from otelml.pdata import Signal

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds in a Go-style duration such as ``200ms``, ``1h30m`` or ``5s``.

    A bare number is taken as seconds.

    >>> parse_duration("1m30s")
    90.0
    >>> parse_duration("250ms")
    0.25
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 5s or 200ms")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 5s or 200ms")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"invalid duration {value!r} (use e.g. 5s, 200ms, 1h30m)")
    return sign * total


def format_duration(seconds: float) -> str:
    if seconds and seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds * 1000:g}ms"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
"""Seconds, written in YAML as a Go-style duration (``5s``, ``200ms``)."""


class ComponentConfig(BaseModel):
    """Base of every component's and nested section's configuration."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    def validate_config(self) -> list[str]:
        """Checks that involve several fields.

        Returns one message per problem, each starting with the field path
        it concerns (``"timeout: must be positive"``), so that the service
        can report every problem at once with its full path.
        """
        return []

    def validate_signal(self, signal: Signal) -> list[str]:
        """Problems of this config in a pipeline of ``signal``, pathed like :meth:`validate_config`.

        For settings that name parts of the data (a reference to ``span.name``
        means nothing in a logs pipeline), so that ``validate`` catches what
        start would refuse.
        """
        return []

    def extension_references(self) -> list[tuple[str, str]]:
        """``(field, extension ID)`` for each setting that names an extension.

        The config check then refuses any that is not configured or not
        enabled in ``service::extensions``.
        """
        return []


def validation_messages(error: ValidationError) -> list[str]:
    """``path: message`` lines from a pydantic error, in the collector's ``::`` form."""
    lines = []
    for detail in error.errors():
        path = "::".join(str(part) for part in detail["loc"])
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        lines.append(f"{path}: {message}" if path else message)
    return lines


def sections(config: BaseModel, prefix: str = "") -> Iterator[tuple[str, BaseModel]]:
    """``config`` and every section nested in it (in fields, lists and maps), each with its ``::`` path prefix."""
    yield prefix, config
    for name in type(config).model_fields:
        value = getattr(config, name)
        values = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else [(None, value)]
        for key, item in values:
            if isinstance(item, BaseModel):
                yield from sections(item, f"{prefix}{name}::" if key is None else f"{prefix}{name}::{key}::")


def nested_problems(config: BaseModel, prefix: str = "") -> list[str]:
    """``validate_config()`` of ``config`` and of every nested section, with their paths."""
    return [f"{path}{problem}" for path, section in sections(config, prefix)
            if isinstance(section, ComponentConfig) for problem in section.validate_config()]
