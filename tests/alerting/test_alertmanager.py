"""The alertmanager exporter against a real Prometheus Alertmanager (Debian's prometheus-alertmanager).

Alertmanager is started here on a free loopback port with a config and a
storage folder written here; a test whose Alertmanager cannot start fails.
Its webhook notifications come to a small HTTP server of the test, so the
resolution is seen as Alertmanager reports it, not only as we sent it.
"""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelml import conventions as names
from otelml.cli import load_config
from otelml.component import ComponentID, CreateSettings, Kind
from otelml.config import PipelineID
from otelml.encoding import add_attributes
from otelml.exporters.alertmanager.config import AlertmanagerExporterConfig
from otelml.exporters.alertmanager.exporter import AlertmanagerExporter
from otelml.exporters.alertmanager.local import LocalAlertmanager, send_alerts_to
from otelml.pdata import Signal
from otelml.registry import Registry
from otelml.service import Service
from otelml.telemetry import Telemetry
from tests.alerting.support import START, alerting_service, marks, scored_spans, spans
from tests.conftest import REPO, free_port
from tests.kafka.support import eventually

CART = "service.name=checkout span.name=GET /cart"
FAST_RETRY = {"initial_interval": "50ms", "max_interval": "100ms"}


class Webhook:
    """Where Alertmanager sends its notifications: keeps every alert it is told about, with its status."""

    def __init__(self):
        self.notified: list[dict] = []
        self.url = ""

    async def _receive(self, request: web.Request) -> web.Response:
        self.notified += (await request.json())["alerts"]
        return web.Response()

    async def __aenter__(self) -> Webhook:
        app = web.Application()
        app.router.add_post("/", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()

    def statuses(self, alertname: str) -> list[str]:
        return [alert["status"] for alert in self.notified if alert["labels"]["alertname"] == alertname]


def notifying(webhook_url: str) -> dict:
    """An Alertmanager config that notifies ``webhook_url`` at once, of firing and of resolved alerts."""
    return {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "key"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }


@pytest.mark.integration
@pytest.mark.integration
async def test_an_incident_fires_in_alertmanager_and_is_resolved_there(tmp_path):
    async with Webhook() as webhook:
        with LocalAlertmanager(tmp_path / "alertmanager", notifying(webhook.url)) as alertmanager:
            service = alerting_service(
                "30s", "alertmanager", {"endpoint": alertmanager.url, "generator_url": "http://grafana.example/d/otelml"}
            )
            await service.start()
            try:
                scored = scored_spans(service)
                details = dict(key=CART, target="duration", unit="ms", actual=2000.0, expected=52.1, low=40.0, high=70.0)
                await scored.consume(
                    spans(
                        ("checkout", "GET /cart", 100, marks("i1", opens=True, flagged=True, score=0.95, **details)),
                        *[("checkout", "GET /cart", t, marks("i1", flagged=True, score=0.97)) for t in range(101, 130)],
                    )
                )
                await eventually(lambda: alertmanager.alerts(), what="the alert reaching Alertmanager")
                [alert] = alertmanager.alerts()
                assert alert["labels"] == {
                    "alertname": "AnomalyIncident",
                    "severity": "critical",
                    "service": "checkout",
                    "key": CART,
                }
                assert alert["annotations"]["summary"].startswith(f"anomaly in {CART}: duration 2,000 ms, expected 52.1 ms")
                assert (
                    alert["annotations"]["otelml_actual"] == "2000.0" and alert["annotations"]["otelml_alert_status"] == "firing"
                )
                assert alert["startsAt"] == "2023-11-14T22:15:00.000Z", "the incident's first record"
                assert alert["generatorURL"] == "http://grafana.example/d/otelml"
                await eventually(
                    lambda: webhook.statuses("AnomalyIncident") == ["firing"], what="Alertmanager notifying the alert"
                )

                await scored.consume(spans(*[("checkout", "GET /cart", t, marks("i1")) for t in range(130, 161)]))
                await eventually(
                    lambda: "resolved" in webhook.statuses("AnomalyIncident"), what="Alertmanager notifying the resolution"
                )
                resolved = [a for a in webhook.notified if a["status"] == "resolved"][-1]
                assert resolved["endsAt"] == "2023-11-14T22:15:29Z" and resolved["startsAt"] == "2023-11-14T22:15:00Z"
                assert alertmanager.alerts() == [], "a resolved alert is no longer active"
            finally:
                await service.shutdown()
            assert service.telemetry.value("otelcol_exporter_sent_log_records_total", exporter="alertmanager") == 2


def exporter(port: int, telemetry: Telemetry, **settings) -> AlertmanagerExporter:
    config = AlertmanagerExporterConfig.model_validate({"endpoint": f"http://127.0.0.1:{port}", **settings})
    return AlertmanagerExporter(CreateSettings(ComponentID("alertmanager"), Kind.EXPORTER, telemetry), config)


def alert_records(*names_and_statuses: tuple[str, str]) -> ExportLogsServiceRequest:
    batch = ExportLogsServiceRequest()
    resource = batch.resource_logs.add()
    add_attributes(resource.resource.attributes, {"service.name": "checkout"})
    for when, (name, status) in enumerate(names_and_statuses):
        record = resource.scope_logs.add().log_records.add(time_unix_nano=(START + when) * 10**9, severity_text="warning")
        record.body.string_value = f"{name} {status}"
        add_attributes(record.attributes, {names.ALERT_NAME: name, names.ALERT_STATUS: status, names.KEY: name})
    return batch


@pytest.mark.integration
@pytest.mark.integration
async def test_alerts_wait_in_the_queue_while_alertmanager_is_down_and_arrive_once_it_is_up(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="otelml")
    port, telemetry = free_port(), Telemetry()
    sender = exporter(port, telemetry, retry_on_failure={**FAST_RETRY, "max_elapsed_time": "60s"})
    await sender.start(host=None)
    try:
        await sender.consume(alert_records(("DiskFull", "firing")))
        await eventually(lambda: "retrying" in caplog.text, what="a failed attempt")
        assert telemetry.value("otelcol_exporter_sent_log_records_total", exporter="alertmanager") == 0
        with LocalAlertmanager(tmp_path / "alertmanager", port=port) as alertmanager:
            await eventually(
                lambda: telemetry.value("otelcol_exporter_sent_log_records_total", exporter="alertmanager") == 1,
                what="the queued alert being sent",
            )
            assert [a["labels"]["alertname"] for a in alertmanager.alerts()] == ["DiskFull"]
    finally:
        await sender.shutdown()
    assert any(r.component == "exporter alertmanager" and "retrying" in r.getMessage() for r in caplog.records), (
        "the failed attempt is logged, naming the exporter"
    )


@pytest.mark.integration
@pytest.mark.integration
async def test_an_alertmanager_that_stays_down_is_counted_as_failed_sends(tmp_path):
    telemetry = Telemetry()
    sender = exporter(free_port(), telemetry, retry_on_failure={**FAST_RETRY, "max_elapsed_time": "300ms"})
    await sender.start(host=None)
    try:
        await sender.consume(alert_records(("DiskFull", "firing"), ("DiskFull", "resolved")))
        await eventually(
            lambda: telemetry.value("otelcol_exporter_send_failed_log_records_total", exporter="alertmanager") == 2,
            what="the send being given up",
        )
    finally:
        await sender.shutdown()
    assert (
        telemetry.value("otelml_dropped_items_total", component="alertmanager", otel_signal="logs", reason="retries_exhausted")
        == 2
    )


def test_log_records_become_alerts_with_valid_label_and_annotation_names():
    sender = exporter(
        9093,
        Telemetry(),
        event_labels=["deployment.environment"],
        severity="page",
        labels={"service": "resource.service.name", "template": "attributes.log.record.template"},
    )
    batch = ExportLogsServiceRequest()
    resource = batch.resource_logs.add()
    add_attributes(resource.resource.attributes, {"service.name": "auth"})
    plain = resource.scope_logs.add().log_records.add(
        time_unix_nano=(START * 10**9) + 5, event_name="login.failed", trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    )
    plain.body.string_value = "password rejected"
    add_attributes(
        plain.attributes, {"deployment.environment": "prod", "log.record.template": "password <*>", "user.tries": [1, 2, 3]}
    )
    resolved = resource.scope_logs.add().log_records.add(time_unix_nano=(START + 90) * 10**9, severity_text="critical")
    add_attributes(
        resolved.attributes, {names.ALERT_NAME: "AnomalyIncident", names.ALERT_STATUS: "resolved", names.INCIDENT_DURATION: 60.0}
    )
    first, second = sender.alerts_of(batch)
    assert first == {
        "labels": {
            "alertname": "login.failed",
            "severity": "page",
            "service": "auth",
            "deployment_environment": "prod",
            "template": "password <*>",
        },
        "annotations": {
            "deployment_environment": "prod",
            "log_record_template": "password <*>",
            "user_tries": "1, 2, 3",
            "summary": "password rejected",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
        },
        "startsAt": "2023-11-14T22:13:20.000000005Z",
    }
    assert second["labels"] == {"alertname": "AnomalyIncident", "severity": "critical", "service": "auth"}
    assert (second["startsAt"], second["endsAt"]) == ("2023-11-14T22:13:50.000000000Z", "2023-11-14T22:14:50.000000000Z")


def test_severity_attribute_overrides_the_records_severity():
    sender = exporter(9093, Telemetry(), severity_attribute="alert.severity")
    batch = ExportLogsServiceRequest()
    record = batch.resource_logs.add().scope_logs.add().log_records.add(severity_text="ERROR")
    add_attributes(record.attributes, {"alert.severity": "page"})
    plain = batch.resource_logs[0].scope_logs[0].log_records.add(severity_text="ERROR")
    assert [a["labels"]["severity"] for a in sender.alerts_of(batch)] == ["page", "ERROR"]
    assert plain.time_unix_nano == 0 and "startsAt" not in sender.alerts_of(batch)[1], "Alertmanager dates it on arrival"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"api_version": "v1"}, "api_version: 'v1' is not supported; use v2 (Alertmanager removed v1 in 0.27)"),
        (
            {"generator_url": "opentelemetry-collector"},
            "generator_url: 'opentelemetry-collector' must be a URL (Alertmanager refuses anything else)",
        ),
        ({"endpoint": "alertmanager:9093"}, "endpoint: 'alertmanager:9093' must start with http:// or https://"),
        ({"labels": {"severity": "resource.service.name"}}, "labels::severity: set by the exporter itself"),
        (
            {"labels": {"my.label": "resource.service.name"}},
            "labels::my.label: not a label name (letters, digits and _, not first a digit)",
        ),
        ({"labels": {"op": "span.name"}}, 'labels::op: "span.name" does not exist in logs'),
        ({"labels": {"scope": "scope.name"}}, 'labels::scope: "scope.name": scope references are not supported for labels'),
    ],
)
def test_config_problems_are_named(settings, problem):
    from otelml.configmodel import nested_problems

    assert nested_problems(AlertmanagerExporterConfig.model_validate(settings)) == [problem]


@pytest.mark.integration
@pytest.mark.integration
async def test_the_demo_config_sends_its_alerts_to_a_local_alertmanager(tmp_path, monkeypatch):
    for name in ("GRPC", "HTTP", "METRICS", "HEALTH", "PROMETHEUS", "ZPAGES"):
        monkeypatch.setenv(f"OTELML_{name}_ENDPOINT", "127.0.0.1:0")
    monkeypatch.setenv("OTELML_OUTPUT", str(tmp_path / "telemetry.jsonl"))
    monkeypatch.setenv("OTELML_ALERTS_OUTPUT", str(tmp_path / "alerts.jsonl"))
    config, _ = load_config([str(REPO / "config" / "demo.yaml")], [], Registry.default())
    with LocalAlertmanager(tmp_path / "alertmanager") as alertmanager:
        assert send_alerts_to(config, alertmanager.url) == ["logs/alerts"]
        assert [str(e) for e in config.pipelines[PipelineID(Signal.LOGS, "alerts")].exporters][-1] == "alertmanager/local"
        service = Service(config)
        await service.start()
        try:
            connector = service.graph.connectors[ComponentID("anomaly_alerts")]
            await connector.consume(spans(("checkout", "GET /cart", 0, marks("i1", opens=True, flagged=True, key=CART))))
            await eventually(lambda: alertmanager.alerts(), what="the demo's alert in Alertmanager")
            assert [a["labels"]["key"] for a in alertmanager.alerts()] == [CART]
        finally:
            await service.shutdown()
