"""References to the parts of a span, log record or metric data point that name a stream or give its value, and reading them.

A reference is text such as ``resource.service.name``, ``span.name`` or
``attributes.client.address``. Parsing happens once, at config time; the
batch reader then turns each reference into a direct field access.

An attribute reference used in a key may end in a network prefix length,
``attributes.client.address/24``: IP addresses are then read as their
network (``10.0.3.7`` as ``10.0.3.0/24``), so one key groups a subnet's
clients. ``/24/64`` gives IPv4 and IPv6 addresses lengths of their own
(one length serves both, capped at the address's size); a value that is
not an IP address is read as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import re

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otelml.pdata import Signal

BOTH = frozenset({Signal.TRACES, Signal.LOGS})
TRACES = frozenset({Signal.TRACES})
LOGS = frozenset({Signal.LOGS})
METRICS = frozenset({Signal.METRICS})
ALL = BOTH | METRICS

# Record fields a key may use, with the signals that have them. A metric's
# records are its data points: ``attributes`` is all of a point's attributes
# (its series), ``metric.name`` the name of the metric it belongs to.
KEY_FIELDS = {
    "scope.name": ("scope", ALL),
    "scope.version": ("scope", ALL),
    "span.name": ("record", TRACES),
    "span.kind": ("record", TRACES),
    "span.status.code": ("record", TRACES),
    "log.severity_text": ("record", LOGS),
    "log.severity_number": ("record", LOGS),
    "log.event_name": ("record", LOGS),
    "body": ("record", LOGS),
    "metric.name": ("record", METRICS),
    "attributes": ("record", METRICS),
}
# Numeric values a target may use.
# ``rate`` is the key's own record rate, computed from record times (see the processor);
# ``value`` a data point's value, as its metric type says (see the anomaly processor's README);
# ``novelty`` how rare a log record's template (``log.record.template.id``) is for its key.
DURATION, SEVERITY_NUMBER, BODY, RATE, VALUE, NOVELTY = "duration", "severity_number", "body", "rate", "value", "novelty"
TARGET_FIELDS = {DURATION: TRACES, SEVERITY_NUMBER: LOGS, BODY: LOGS, RATE: BOTH, VALUE: METRICS, NOVELTY: LOGS}
KEY_HELP = "resource.<attribute>, attributes.<attribute>, " + ", ".join(KEY_FIELDS)
TARGET_HELP = "attributes.<attribute>, " + ", ".join(TARGET_FIELDS)

DEFAULT_KEYS = {
    Signal.TRACES: ["resource.service.name", "span.name"],
    Signal.LOGS: ["resource.service.name"],
    Signal.METRICS: ["resource.service.name", "metric.name", "attributes"],
}
DEFAULT_TARGETS = {Signal.TRACES: "duration", Signal.LOGS: "severity_number", Signal.METRICS: "value"}


@dataclasses.dataclass(frozen=True)
class Reference:
    """One parsed reference.

    ``level`` is where the value lives: ``resource`` or ``record`` attributes
    (``attribute`` names it), or a ``scope``/``record`` field (``field``).
    """

    text: str
    level: str
    signals: frozenset[Signal]
    attribute: str = ""
    field: str = ""
    # Network prefix lengths (IPv4, IPv6) an attribute's addresses are read as; None reads them as they are.
    prefix: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        """Short name used in key descriptions (``service.name``, ``span.name``, ``client.address/24``)."""
        name = self.attribute or self.field
        return name + self.text.rpartition(self.attribute)[2] if self.prefix else name

    def attribute_text(self, found: dict | None) -> str:
        """The text of this attribute reference among ``found`` (attribute name -> AnyValue); ``""`` when absent.

        >>> from opentelemetry.proto.common.v1.common_pb2 import AnyValue
        >>> parse_key("attributes.client.address/24").attribute_text({"client.address": AnyValue(string_value="10.0.3.7")})
        '10.0.3.0/24'
        """
        if not found or self.attribute not in found:
            return ""
        text = any_value_text(found[self.attribute])
        return network(text, *self.prefix) if self.prefix else text


def parse_key(text: str) -> Reference:
    """A key reference; raises ``ValueError`` naming the allowed forms.

    >>> parse_key("resource.service.name").attribute
    'service.name'
    >>> parse_key("span.name").signals == TRACES
    True
    """
    attribute = _attribute_reference(text)
    if attribute is not None:
        return attribute
    if text in KEY_FIELDS:
        level, signals = KEY_FIELDS[text]
        return Reference(text, level, signals, field=text)
    raise ValueError(f'unknown reference "{text}" (use {KEY_HELP})')


def parse_target(text: str) -> Reference:
    """A target reference: a numeric field or record attribute.

    >>> parse_target("attributes.temperature").attribute
    'temperature'
    """
    if text.startswith("attributes."):
        # A span's or log record's attribute; a data point's value is ``value``.
        attribute = _attribute_reference(text)
        assert attribute is not None  # the text starts with attributes.
        return dataclasses.replace(attribute, signals=BOTH)
    if text in TARGET_FIELDS:
        return Reference(text, "record", TARGET_FIELDS[text], field=text)
    raise ValueError(f'unknown target "{text}" (use {TARGET_HELP})')


_PREFIX_LENGTHS = re.compile(r"/(\d+)(?:/(\d+))?$")


def _attribute_reference(text: str) -> Reference | None:
    for prefix, level in (("resource.", "resource"), ("attributes.", "record")):
        if text.startswith(prefix):
            name, lengths = text[len(prefix) :], None
            found = _PREFIX_LENGTHS.search(name)
            if found:
                name = name[: found.start()]
                lengths = (int(found.group(1)), int(found.group(2) or found.group(1)))
                if lengths[1] > 128 or (found.group(2) and lengths[0] > 32):
                    raise ValueError(f'reference "{text}": a prefix is at most 32 bits long for IPv4, 128 for IPv6')
            if not name:
                raise ValueError(f'reference "{text}" names no attribute')
            return Reference(text, level, ALL, attribute=name, prefix=lengths)
    return None


@functools.lru_cache(maxsize=65536)
def network(text: str, ipv4_length: int, ipv6_length: int) -> str:
    """The network of an IP address, by prefix length; other text as it is.

    >>> network("10.0.3.7", 24, 64), network("2001:db8:1:2::5", 24, 64), network("gateway-1", 24, 64)
    ('10.0.3.0/24', '2001:db8:1:2::/64', 'gateway-1')
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    length = min(ipv4_length if address.version == 4 else ipv6_length, address.max_prefixlen)
    return str(ipaddress.ip_network((address, length), strict=False))


def check_signal(reference: Reference, signal: Signal) -> None:
    if signal not in reference.signals:
        raise ValueError(f'"{reference.text}" does not exist in {signal.value}')


def any_value_text(value) -> str:
    """An AnyValue as text, for keys (``""`` when empty)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind in ("array_value", "kvlist_value"):
        return str(getattr(value, kind)).replace("\n", " ").strip()
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return str(getattr(value, kind))


def any_value_number(value) -> float | None:
    """An AnyValue as a float: numbers, booleans and numeric strings; else None."""
    kind = value.WhichOneof("value")
    if kind in ("double_value", "int_value", "bool_value"):
        return float(getattr(value, kind))
    if kind == "string_value":
        try:
            number = float(value.string_value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def find_attributes(attributes, names: frozenset[str]) -> dict:
    """The AnyValues of ``names`` among ``attributes`` (a repeated KeyValue)."""
    return {kv.key: kv.value for kv in attributes if kv.key in names}


def record_text(record, reference: Reference, found: dict | None) -> str:
    """The text of a key ``reference`` on ``record``; ``found`` holds the record attributes looked up."""
    if reference.attribute:
        return reference.attribute_text(found)
    field = reference.field
    if field == "span.name":
        return record.name
    if field == "span.kind":
        return Span.SpanKind.Name(record.kind)
    if field == "span.status.code":
        return Status.StatusCode.Name(record.status.code)
    if field == "log.severity_text":
        return record.severity_text
    if field == "log.severity_number":
        return str(record.severity_number)
    if field == "log.event_name":
        return record.event_name
    return any_value_text(record.body)


class KeyReader:
    """Reads a key (several references) from whole scopes of records, in config order.

    Resource and scope parts are read once per resource and scope; record
    attributes are looked up only when a reference names one.

    Examples
    --------
    >>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    >>> request = ExportTraceServiceRequest()
    >>> resource_spans = request.resource_spans.add()
    >>> resource_spans.resource.attributes.add(key="service.name").value.string_value = "cart"
    >>> scope_spans = resource_spans.scope_spans.add()
    >>> _ = scope_spans.spans.add(name="GET /cart"), scope_spans.spans.add(name="POST /cart")
    >>> reader = KeyReader([parse_key("span.name"), parse_key("resource.service.name")])
    >>> reader.keys(resource_spans.resource, scope_spans.scope, scope_spans.spans)
    [('GET /cart', 'cart'), ('POST /cart', 'cart')]
    """

    def __init__(self, references: list[Reference]):
        self.references = references
        self.resource_attributes = frozenset(r.attribute for r in references if r.level == "resource")
        self.record_attributes = frozenset(r.attribute for r in references if r.level == "record" and r.attribute)
        self._record_references = [(index, r) for index, r in enumerate(references) if r.level == "record"]

    def keys(self, resource, scope, records) -> list[tuple[str, ...]]:
        """The key of each of ``records`` (a scope's spans or log records), as a tuple of texts."""
        found = find_attributes(resource.attributes, self.resource_attributes) if self.resource_attributes else {}
        outer = []
        for reference in self.references:
            if reference.level == "resource":
                outer.append(reference.attribute_text(found))
            elif reference.level == "scope":
                outer.append(scope.name if reference.field == "scope.name" else scope.version)
            else:
                outer.append("")
        if not self._record_references:
            return [tuple(outer)] * len(records)
        keys = []
        for record in records:
            attributes = find_attributes(record.attributes, self.record_attributes) if self.record_attributes else None
            key = list(outer)
            for index, reference in self._record_references:
                key[index] = record_text(record, reference, attributes)
            keys.append(tuple(key))
        return keys
