"""The redaction processor over realistic payloads: nothing personal or secret gets through."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.confmap import ConfigError
from otelml.pdata import Signal, to_json
from otelml.processors.redaction.config import RedactionConfig
from otelml.processors.redaction.presets import PRESETS
from otelml.processors.redaction.processor import RedactionProcessor
from otelml.telemetry import Telemetry
from tests.conftest import build_config, logs_of, read_batches, spans_of
from tests.security.clients import gateway_config, send_traces
from tests.test_otlp_e2e import wait_for

pytestmark = pytest.mark.integration

ALL_PRESETS = list(PRESETS)
HASH_KEY = "0123456789abcdef-test-key"
# Every value below that is personal or secret; none may be found in the output.
SENSITIVE = [
    "203.0.113.42",
    "10.12.0.7",
    "198.51.100.7",
    "192.0.2.44",
    "192.0.2.9",
    "fe80::1c2b:3aff:fe4d:5e6f",
    "2001:db8:85a3::8a2e:370:7334",
    "2001:db8::2",
    "2001:db8::9",
    "2001:db8:1::5",
    "::ffff:192.0.2.128",
    "alice@example.com",
    "carol@example.org",
    "dave@example.net",
    "erin.o'neil+billing@mail.example.co.uk",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "378282246310005",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
]
NOT_A_CARD = "4111 1111 1111 1112"  # fails the Luhn check: an order number, kept


def put(attributes, key: str, value) -> None:
    """Append one attribute: str, int, a list of str (array) or a dict of str (kvlist)."""
    target = attributes.add(key=key).value
    if isinstance(value, int):
        target.int_value = value
    elif isinstance(value, list):
        for item in value:
            target.array_value.values.add(string_value=item)
    elif isinstance(value, dict):
        for name, item in value.items():
            target.kvlist_value.values.add(key=name).value.string_value = item
    else:
        target.string_value = value


def checkout_traces() -> ExportTraceServiceRequest:
    """A server span of a web shop, as HTTP instrumentation records it, with an exception event and a link."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    put(resource_spans.resource.attributes, "service.name", "checkout")
    put(resource_spans.resource.attributes, "host.ip", ["10.12.0.7", "fe80::1c2b:3aff:fe4d:5e6f"])
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.flask"
    span = scope_spans.spans.add(trace_id=bytes(range(16)), span_id=bytes(range(8)), name="POST /api/orders", kind=2)
    for key, value in {
        "http.request.method": "POST",
        "http.route": "/api/orders",
        "http.response.status_code": 500,
        "client.address": "203.0.113.42",
        "client.port": 51234,
        "server.address": "2001:db8:85a3::8a2e:370:7334",
        "network.peer.address": "::ffff:192.0.2.128",
        "http.request.header.authorization": ["Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"],
        "http.request.header.x-forwarded-for": ["192.0.2.9, 2001:db8::9"],
        "enduser.id": "alice@example.com",
        "order.note": f"paid with 4111 1111 1111 1111, ref {NOT_A_CARD}",
        "app.form": {"email": "erin.o'neil+billing@mail.example.co.uk", "card": "378282246310005"},
        "user.password": "hunter2",
    }.items():
        put(span.attributes, key, value)
    event = span.events.add(name="exception")
    put(event.attributes, "exception.type", "ConnectionRefusedError")
    put(event.attributes, "exception.message", "connection from 198.51.100.7 refused for carol@example.org")
    put(event.attributes, "exception.stacktrace", 'File "db.py", line 9, in connect\n  sock.connect(("2001:db8::2", 5432))')
    link = span.links.add(trace_id=bytes(16), span_id=bytes(8))
    put(link.attributes, "messaging.source", "192.0.2.44")
    return request


def login_logs() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    put(resource_logs.resource.attributes, "service.name", "auth")
    records = resource_logs.scope_logs.add().log_records
    first = records.add(severity_text="WARN")
    first.body.string_value = "login failed for dave@example.net from 192.0.2.44 (card 5500-0000-0000-0004)"
    put(first.attributes, "client.address", "192.0.2.44")
    second = records.add(severity_text="INFO")
    for key, value in (("msg", "session opened"), ("src", "2001:db8:1::5"), ("user", "carol@example.org")):
        second.body.kvlist_value.values.add(key=key).value.string_value = value
    return request


class Capture:
    mutates_data = False

    def __init__(self):
        self.batches = []

    async def consume(self, batch) -> None:
        self.batches.append(batch)


async def redact(batch, **settings):
    """``batch`` after a redaction processor configured with ``settings``."""
    signal = Signal.of(batch)
    capture = Capture()
    processor = RedactionProcessor(
        CreateSettings(ComponentID("redaction"), Kind.PROCESSOR, Telemetry()), RedactionConfig(**settings), signal, capture
    )
    await processor.consume(batch)
    return capture.batches[0]


def attributes_of(attributes) -> dict:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in attributes}


def assert_nothing_sensitive(batch) -> None:
    text = to_json(batch).decode()
    assert [value for value in SENSITIVE if value in text or value.replace("'", "\\u0027") in text] == []
    for name in ("email", "ipv4", "ipv6"):
        assert PRESETS[name].pattern.findall(text) == [], name


async def test_presets_leave_no_address_email_card_or_token_in_traces_and_logs():
    presets = {"allow_all_keys": True, "blocked_value_presets": ALL_PRESETS, "blocked_keys": ["(?i)password"]}
    traces = await redact(checkout_traces(), **presets)
    logs = await redact(login_logs(), **presets)
    assert_nothing_sensitive(traces)
    assert_nothing_sensitive(logs)

    span = spans_of([traces])[0]
    attributes = attributes_of(span.attributes)
    assert attributes["order.note"] == f"paid with ****, ref {NOT_A_CARD}"
    assert attributes["user.password"] == "****"
    assert attributes["http.route"] == "/api/orders" and attributes["client.port"] == 51234
    # client.address, server.address, network.peer.address, authorization, x-forwarded-for,
    # enduser.id, order.note, app.form, user.password
    assert attributes["redaction.masked.count"] == 9
    assert "redaction.masked.keys" not in attributes  # only at summary: debug
    assert attributes_of(span.events[0].attributes)["exception.type"] == "ConnectionRefusedError"
    first, second = logs_of([logs])
    assert first.body.string_value == "login failed for **** from **** (card ****)"
    assert attributes_of(first.attributes)["redaction.body.masked.count"] == 1
    assert attributes_of(second.body.kvlist_value.values)["msg"] == "session opened"


async def test_allow_list_deletes_other_keys_and_the_summary_adds_up():
    settings = {
        "allowed_keys": ["http.route", "client.address", "exception.message"],
        "ignored_keys": ["service.name"],
        "blocked_value_presets": ["ipv4", "email"],
        "summary": "debug",
    }
    once = await redact(checkout_traces(), **settings)
    resource = attributes_of(once.resource_spans[0].resource.attributes)
    assert resource == {
        "service.name": "checkout",
        "redaction.redacted.keys": "host.ip",
        "redaction.redacted.count": 1,
        "redaction.ignored.count": 1,
    }
    span = spans_of([once])[0]
    attributes = attributes_of(span.attributes)
    assert set(attributes) == {
        "http.route",
        "client.address",
        "redaction.redacted.keys",
        "redaction.redacted.count",
        "redaction.masked.keys",
        "redaction.masked.count",
    }
    assert attributes["redaction.redacted.count"] == 11
    assert attributes["redaction.masked.keys"] == "client.address"
    assert attributes_of(span.events[0].attributes)["exception.message"] == "connection from **** refused for ****"

    # A second processor keeps the summary keys and adds its own findings to them.
    twice = await redact(once, allow_all_keys=True, blocked_keys=["route"], summary="debug")
    attributes = attributes_of(spans_of([twice])[0].attributes)
    assert attributes["redaction.masked.keys"] == "client.address,http.route"
    assert attributes["redaction.masked.count"] == 2
    assert attributes["redaction.redacted.count"] == 11


async def test_hash_mode_replaces_with_hmacs_that_still_group():
    settings = {
        "allow_all_keys": True,
        "hash_keys": ["client.address"],
        "hash_function": "hmac-sha256",
        "hash_key": HASH_KEY,
        "blocked_value_presets": ALL_PRESETS,
        "summary": "silent",
    }
    traces = await redact(checkout_traces(), **settings)
    logs = await redact(login_logs(), **settings)
    assert_nothing_sensitive(traces)
    assert_nothing_sensitive(logs)

    digest = hmac.new(HASH_KEY.encode(), b"192.0.2.44", hashlib.sha256).hexdigest()
    record = logs_of([logs])[0]
    assert attributes_of(record.attributes) == {"client.address": digest}
    # The same address masked inside a text gets the same pseudonym as the hashed key.
    assert digest in record.body.string_value
    link = spans_of([traces])[0].links[0]
    assert attributes_of(link.attributes) == {"messaging.source": digest}
    assert attributes_of(spans_of([traces])[0].attributes)["client.port"] == 51234


async def test_metric_point_attributes_are_redacted():
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="http.server.request.duration")
    point = metric.histogram.data_points.add(count=1)
    put(point.attributes, "client.address", "203.0.113.42")
    put(point.attributes, "http.route", "/api/orders")
    redacted = await redact(request, allowed_keys=["http.route"], summary="silent")
    assert attributes_of(redacted.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0].attributes) == {
        "http.route": "/api/orders"
    }


def test_hashed_addresses_are_the_same_across_restarts_with_the_same_key(otelml_process, tmp_path):
    config = gateway_config()
    config["processors"]["redaction"] = {"allow_all_keys": True, "hash_keys": ["client.address"], "hash_key": "${env:HASH_KEY}"}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["redaction", "batch"]

    def run(key: str) -> list[str]:
        """Client addresses of checkout_traces() and login_logs() as written by an otelml using ``key``."""
        with otelml_process(config, extra_env={"HASH_KEY": key}) as otelml:
            send_traces(otelml, checkout_traces())
            out = otelml.workdir / "out.jsonl"
            assert wait_for(lambda: read_batches(out, Signal.TRACES))
        return [attributes_of(s.attributes)["client.address"] for s in spans_of(read_batches(out, Signal.TRACES))]

    first, again, other_key = run(HASH_KEY), run(HASH_KEY), run("another-key-0123456789")
    assert first == again == [hmac.new(HASH_KEY.encode(), b"203.0.113.42", hashlib.sha256).hexdigest()]
    assert other_key != first and re.fullmatch("[0-9a-f]{64}", other_key[0])


def test_redaction_settings_are_checked(gateway_env):
    config = gateway_config()
    config["processors"].update(
        {
            "redaction/regex": {"blocked_keys": ["ok", "(unclosed"], "blocked_values": ["[z-a]"]},
            "redaction/nokey": {"hash_keys": ["client.address"]},
            "redaction/shortkey": {"hash_function": "hmac-sha256", "hash_key": "tiny-k3y"},
            "redaction/preset": {"blocked_value_presets": ["phone"]},
        }
    )
    with pytest.raises(ConfigError) as error:
        build_config(config)
    problems = error.value.problems
    assert any(
        p.startswith("processors::redaction/regex::blocked_keys::1: invalid regular expression '(unclosed'") for p in problems
    )
    assert any(p.startswith("processors::redaction/regex::blocked_values::0: invalid regular expression") for p in problems)
    for name in ("nokey", "shortkey"):
        assert (
            f"processors::redaction/{name}::hash_key: must be set, at least 16 characters long, when hash_keys or hash_function is used"
            in problems
        )
    assert any(p.startswith("processors::redaction/preset::blocked_value_presets::0: Input should be") for p in problems)
    assert "tiny-k3y" not in "\n".join(problems)
