"""MQTT topic filters, and templates that turn topic levels into resource attributes."""

from __future__ import annotations

import re

_CAPTURE = re.compile(r"^\{([^{}/]+)\}$")


def filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid MQTT subscription filter, or None.

    >>> filter_problem("sensors/+/temperature"), filter_problem("sensors/#/x")
    (None, "'#' must be the last level")
    """
    if not topic_filter:
        return "must not be empty"
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' must be the last level"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


class TopicTemplate:
    """A topic pattern whose ``{name}`` levels become resource attributes.

    ``+`` matches any one level and ``#`` any remaining levels without
    capturing them; other levels must match literally.

    >>> TopicTemplate("sensors/{device.id}/{sensor.type}").attributes("sensors/d-7/temperature")
    {'device.id': 'd-7', 'sensor.type': 'temperature'}
    >>> TopicTemplate("sensors/{device.id}/#").attributes("other/d-7") is None
    True
    """

    def __init__(self, template: str):
        problem = self.problem(template)
        if problem:
            raise ValueError(problem)
        self.template = template
        self.levels = template.split("/")

    @staticmethod
    def problem(template: str) -> str | None:
        """Why ``template`` is not a valid template, or None."""
        levels = template.split("/")
        for index, level in enumerate(levels):
            if level == "#" and index != len(levels) - 1:
                return "'#' must be the last level"
            if ("{" in level or "}" in level) and not _CAPTURE.match(level):
                return f"level {level!r}: a {{name}} must be a whole level"
            if ("+" in level or "#" in level) and level not in ("+", "#"):
                return f"level {level!r}: wildcards must be whole levels"
        names = [m.group(1) for m in map(_CAPTURE.match, levels) if m]
        if not names:
            return "has no {name} level to capture"
        if len(set(names)) != len(names):
            return "captures one name twice"
        return None

    def attributes(self, topic: str) -> dict[str, str] | None:
        """The captured attributes of ``topic``, or None when it does not match."""
        parts = topic.split("/")
        captured: dict[str, str] = {}
        for index, level in enumerate(self.levels):
            if level == "#":
                return captured
            if index >= len(parts):
                return None
            capture = _CAPTURE.match(level)
            if capture:
                captured[capture.group(1)] = parts[index]
            elif level != "+" and level != parts[index]:
                return None
        return captured if len(parts) == len(self.levels) else None
