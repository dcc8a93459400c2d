"""OTLP names to Prometheus names, as the collector's Prometheus translator makes them.

Metric names keep ``[a-zA-Z0-9:]`` runs joined by ``_``, get the unit as a
suffix (``ms`` -> ``milliseconds``, ``By/s`` -> ``bytes_per_second``; units
in braces are annotations and add nothing), ``_total`` when they are
monotonic counters and ``_ratio`` when a gauge has unit ``1``; label names
have every other character replaced by ``_``.
"""

from __future__ import annotations

import base64
import json
import re

# UCUM units to the words Prometheus names use (the translator's table).
UNIT_WORDS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}

_NAME_TOKEN = re.compile(r"[a-zA-Z0-9:]+")
_INVALID_LABEL_CHARACTER = re.compile(r"[^a-zA-Z0-9_]")
_INVALID_NAME_CHARACTER = re.compile(r"[^a-zA-Z0-9:_]")


def metric_name(name: str, unit: str, kind: str, namespace: str = "", suffixes: bool = True) -> str:
    """The Prometheus name of an OTLP metric.

    ``kind`` is the Prometheus type it is served as (``counter``, ``gauge``,
    ``histogram``, ``summary``). Counters keep no ``_total`` here: the
    exposition adds it, as OpenMetrics requires.

    >>> metric_name("http.server.duration", "ms", "histogram")
    'http_server_duration_milliseconds'
    >>> metric_name("system.network.io", "By/s", "gauge", namespace="node")
    'node_system_network_io_bytes_per_second'
    >>> metric_name("cpu.utilization", "1", "gauge")
    'cpu_utilization_ratio'
    >>> metric_name("requests.total", "{request}", "counter")
    'requests'
    >>> metric_name("requests", "ms", "counter", suffixes=False)
    'requests'
    """
    if not suffixes:
        tokens = [part for part in _INVALID_NAME_CHARACTER.split(name) if part]
        if namespace:
            tokens.insert(0, "_".join(part for part in _INVALID_NAME_CHARACTER.split(namespace) if part))
        return _leading_digit("_".join(tokens))
    tokens = _NAME_TOKEN.findall(name)
    main, per = _unit_words(unit)
    if main and main not in tokens:
        tokens.append(main)
    if per and per not in tokens:
        tokens += ["per", per]
    if kind == "counter":
        tokens = [token for token in tokens if token != "total"]
    if unit == "1" and kind == "gauge":
        tokens = [token for token in tokens if token != "ratio"] + ["ratio"]
    if namespace:
        tokens.insert(0, namespace)
    return _leading_digit("_".join(tokens))


def _unit_words(unit: str) -> tuple[str, str]:
    """``("bytes", "second")`` for ``By/s``; annotations in braces give nothing."""
    main, _, per = unit.partition("/")
    main, per = main.strip(), per.strip()
    main_word = "" if not main or "{" in main or "}" in main else UNIT_WORDS.get(main, main)
    per_word = "" if not per or "{" in per or "}" in per else PER_UNIT_WORDS.get(per, per)
    return _clean_unit(main_word), _clean_unit(per_word)


def _clean_unit(word: str) -> str:
    return "_".join(_NAME_TOKEN.findall(word))


def _leading_digit(name: str) -> str:
    return "_" + name if name[:1].isdigit() else name


def label_name(key: str) -> str:
    """A Prometheus label name for an attribute key.

    >>> label_name("service.name"), label_name("2xx"), label_name("_private"), label_name("__reserved")
    ('service_name', 'key_2xx', 'key_private', '__reserved')
    """
    name = _INVALID_LABEL_CHARACTER.sub("_", key)
    if name[:1].isdigit():
        return "key_" + name
    if name.startswith("_") and not name.startswith("__"):
        return "key" + name
    return name


def label_value(value) -> str:
    """An OTLP AnyValue as the text of a label, as the collector's ``AsString`` gives it.

    >>> from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    >>> label_value(AnyValue(int_value=3)), label_value(AnyValue(double_value=0.5)), label_value(AnyValue(bool_value=True))
    ('3', '0.5', 'true')
    """
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        number = value.double_value
        return str(int(number)) if number.is_integer() and abs(number) < 1e21 else repr(number)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind in ("array_value", "kvlist_value"):
        return json.dumps(_plain(value), separators=(",", ":"))
    return str(getattr(value, kind))


def _plain(value):
    """An AnyValue as plain JSON data (arrays and maps of scalars)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def labels_of(attributes, into: dict[str, str] | None = None) -> dict[str, str]:
    """Label names and values for a repeated KeyValue.

    Keys that become the same label name (``a.b`` and ``a_b``) have their
    values joined with ``;`` in key order, as the specification says.
    Labels already in ``into`` are kept (a data point's own attributes win
    over resource attributes copied onto it).

    >>> from opentelemetry.proto.common.v1.common_pb2 import KeyValue, AnyValue
    >>> labels_of([KeyValue(key="a_b", value=AnyValue(string_value="2")), KeyValue(key="a.b", value=AnyValue(string_value="1"))])
    {'a_b': '1;2'}
    """
    labels = {} if into is None else into
    kept = set(labels)
    for kv in sorted(attributes, key=lambda kv: kv.key):
        name = label_name(kv.key)
        if name in kept:
            continue
        text = label_value(kv.value)
        labels[name] = f"{labels[name]};{text}" if name in labels else text
    return labels
