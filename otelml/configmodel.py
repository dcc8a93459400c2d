"""Typed component configuration, as the collector's config structs.

Each component declares a pydantic model derived from :class:`ComponentConfig`.
Defaults live in the model; the user's YAML is validated on top of them;
unknown keys are errors; ``validate_config()`` adds the checks that span fields,
and ``validate_signal()`` those that depend on the pipelines a component is in.
(``validate`` itself is pydantic's, so the hooks have names of their own.)
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError

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


def parse_endpoint(value: str) -> tuple[str, int]:
    """``(host, port)`` of a ``host:port`` endpoint; an empty host means every interface.

    >>> parse_endpoint("[::1]:4317"), parse_endpoint(":8888")
    (('::1', 4317), ('0.0.0.0', 8888))
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid endpoint {value!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def http_url_problem(url: str) -> str | None:
    """Why a client cannot send to ``url``, or None.

    >>> http_url_problem("https://collector:4318/v1/logs") is None, http_url_problem("http://")
    (True, "'http://' names no host")
    >>> http_url_problem("collector:4318"), http_url_problem("http://collector:http")
    ("'collector:4318' must start with http:// or https://", "'http://collector:http' has no valid port")
    """
    if not url.startswith(("http://", "https://")):
        return f"{url!r} must start with http:// or https://"
    parts = urlsplit(url)
    try:
        _ = parts.port  # parsed, and refused, on access
    except ValueError:
        return f"{url!r} has no valid port"
    return None if parts.hostname else f"{url!r} names no host"


def _check_endpoint(value: str) -> str:
    parse_endpoint(value)
    return value


class _Listens:
    """Marks :data:`Endpoint` settings, for :func:`listen_endpoints`."""


_LISTENS = _Listens()

Endpoint = Annotated[str, AfterValidator(_check_endpoint), _LISTENS]
"""A ``host:port`` a server of otelml listens on (port 0 picks a free one)."""


def listen_endpoints(config: BaseModel) -> Iterator[tuple[str, str]]:
    """Every :data:`Endpoint` setting of ``config`` and its sections: ``(path, host:port)``.

    >>> class Server(ComponentConfig):
    ...     endpoint: Endpoint = "localhost:4318"
    >>> class Receiver(ComponentConfig):
    ...     servers: dict[str, Server] = {"http": Server()}
    >>> list(listen_endpoints(Receiver()))
    [('servers::http::endpoint', 'localhost:4318')]
    """
    for path, section in sections(config):
        for name, field in type(section).model_fields.items():
            if _LISTENS in field.metadata:
                yield f"{path}{name}", getattr(section, name)


class ComponentConfig(BaseModel):
    """Base of every component's and nested section's configuration."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    unsupported_keys: ClassVar[Mapping[str, str]] = {}
    """Keys the collector's (or collector-contrib's) component has and this section does not take, each
    with what to do instead: a config holding one is refused with that advice, not with "unknown key".
    A subclass adds its own to those of the classes it derives from."""

    @classmethod
    def unsupported_key_advice(cls, key: str) -> str | None:
        """What to do instead of setting ``key``, from this class's table or an inherited one."""
        for klass in cls.__mro__:
            advice = vars(klass).get("unsupported_keys", {}).get(key)
            if advice:
                return advice
        return None

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


def validation_messages(error: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """``path: message`` lines from a pydantic error, in the collector's ``::`` form.

    With the ``model`` that was validated, a key that a section lists in its
    ``unsupported_keys`` gets that section's advice instead of "unknown key".
    """
    lines = []
    for detail in error.errors():
        path = "::".join(str(part) for part in detail["loc"])
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = _unsupported_key_advice(model, detail["loc"]) or "unknown key"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _unsupported_key_advice(model: type[BaseModel] | None, loc: tuple) -> str | None:
    if model is None or not loc:
        return None
    for section in _classes_at(model, loc[:-1]):
        advice = section.unsupported_key_advice(loc[-1]) if issubclass(section, ComponentConfig) else None
        if advice:
            return advice
    return None


def _classes_at(annotation: Any, loc: tuple) -> list[type]:
    """The classes a value at ``loc`` below ``annotation`` may have, as pydantic walks it (union members
    named by class, list items by index, map values by key)."""
    if not loc:
        return [member for member in _members(annotation) if isinstance(member, type)]
    part, rest = loc[0], loc[1:]
    found = []
    for member in _members(annotation):
        origin = get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(part) or next((f for f in member.model_fields.values() if f.alias == part), None)
            if field is not None:
                found += _classes_at(field.annotation, rest)
            elif part == member.__name__:  # pydantic names the union member it tried
                found += _classes_at(member, rest)
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            found += _classes_at(get_args(member)[0], rest)
        elif origin in (dict, Mapping):
            found += _classes_at(get_args(member)[1], rest)
    return found


def _members(annotation: Any) -> list:
    """``annotation`` without Annotated and Optional wrappers, split into its union members."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


Model = TypeVar("Model", bound=BaseModel)


@dataclasses.dataclass
class Checked(Generic[Model]):
    """A section validated as far as it goes: every problem found, and a config to check further.

    When pydantic refuses some settings, they are left out and the rest is
    validated again (with ``validate_config()`` too), so that one pass finds
    every problem; ``left_out`` are the paths of those settings, and checks of
    the partial ``config`` must not report on them (they hold defaults now).
    ``config`` is None when not even a partial config can be made (a
    required setting is missing).
    """

    config: Model | None
    problems: list[str]
    left_out: tuple[str, ...] = ()

    def unrelated(self, problems: list[str]) -> list[str]:
        """``problems`` that do not concern a setting left out."""
        return [problem for problem in problems if not problem.startswith(tuple(f"{path}:" for path in self.left_out))]


# Each round takes out what pydantic refused; a model validator may then refuse more, so allow a few.
_CHECK_ROUNDS = 4


def check(model: type[Model], document: Any) -> Checked[Model]:
    """Validate ``document`` as ``model``, finding every problem in one pass (see :class:`Checked`).

    >>> class Limits(ComponentConfig):
    ...     size: int = 1
    ...     timeout: Duration = 1.0
    ...     def validate_config(self):
    ...         return ["timeout: must be positive"] if self.timeout <= 0 else []
    >>> check(Limits, {"size": "big", "timeout": "-1s", "colour": "red"}).problems
    ['size: Input should be a valid integer, unable to parse string as an integer', 'colour: unknown key', 'timeout: must be positive']
    """
    remaining = copy.deepcopy(document) if document is not None else {}
    problems: list[str] = []
    left_out: list[tuple] = []
    for _ in range(_CHECK_ROUNDS):
        try:
            config = model.model_validate(remaining)
        except ValidationError as error:
            problems += validation_messages(error, model)
            refused = sorted((detail["loc"] for detail in error.errors()), key=_loc_order, reverse=True)
            if not all(_remove(remaining, loc) for loc in refused):
                return Checked(None, problems)
            left_out += refused
            continue
        checked = Checked(config, problems, tuple("::".join(map(str, loc)) for loc in left_out))
        checked.problems += checked.unrelated(nested_problems(config))
        return checked
    return Checked(None, problems)


def _loc_order(loc: tuple) -> tuple:
    # List items are removed from the last to the first, so that indexes stay right.
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in loc)


def _remove(document: Any, loc: tuple) -> bool:
    """Delete the setting at ``loc`` from ``document``; False when there is none to delete."""
    if not loc:
        return False
    node = document
    for part in loc[:-1]:
        if not _holds(node, part):
            return False
        node = node[part]
    if not _holds(node, loc[-1]):
        return False
    del node[loc[-1]]
    return True


def _holds(node: Any, part: Any) -> bool:
    return (isinstance(node, dict) and part in node) or (
        isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
    )


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
    return [
        f"{path}{problem}"
        for path, section in sections(config, prefix)
        if isinstance(section, ComponentConfig)
        for problem in section.validate_config()
    ]
