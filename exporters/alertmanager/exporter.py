"""The ``alertmanager`` exporter: log records become alerts POSTed to Alertmanager's ``/api/v2/alerts``.

Each log record is one alert. The ``anomaly_alerts`` connector's records
carry what makes Alertmanager group and resolve them: the alert's name,
status (``resolved`` sets ``endsAt``) and the incident's duration (which
dates ``startsAt`` back to the incident's first record), and the same labels
from the alert that opens an incident to the one that resolves it.

Alertmanager answers 200 when it took every alert of a request, 400 or 422
when one of them is invalid (permanent: sending it again cannot help) and
5xx when it cannot store them now (retried, as are connection failures).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import aiohttp

from otelml import conventions as names
from otelml.component import CreateSettings, Host
from otelml.configauth import ClientAuthenticator, client_authenticator
from otelml.encoding import any_value_to_python
from otelml.errors import PermanentError, RetryableError
from otelml.exporterhelper import QueuedRetryExporter
from otelml.exporters.alertmanager.config import AlertmanagerExporterConfig, label_name
from otelml.pdata import Batch, Signal, record_time, scopes
from otelml.references import any_value_number, any_value_text, record_text

DEFAULT_ALERT_NAME = "LogRecord"


class AlertmanagerExporter(QueuedRetryExporter):
    config: AlertmanagerExporterConfig

    signals = frozenset({Signal.LOGS})

    def __init__(self, settings: CreateSettings, config: AlertmanagerExporterConfig):
        super().__init__(settings, config)
        self.url = f"{config.endpoint.rstrip('/')}/api/{config.api_version}/alerts"
        self._labels = config.label_references()
        self._record_names = frozenset(r.attribute for r in self._labels.values() if r.level == "record" and r.attribute)
        self._resource_names = frozenset(r.attribute for r in self._labels.values() if r.level == "resource")
        self._headers = {**{k: v.get_secret_value() for k, v in config.headers.items()}, "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None
        self._authenticator: ClientAuthenticator | None = None

    async def start_exporting(self, host: Host) -> None:
        self._authenticator = client_authenticator(host, self.config.auth)
        https = self.config.endpoint.startswith("https://")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.config.tls.ssl_context() if https else False)
        )

    async def stop_exporting(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def export(self, batch: Batch) -> None:
        alerts = self.alerts_of(batch)
        if not alerts:
            return
        headers = self._headers if self._authenticator is None else {**self._headers, **self._authenticator.headers()}
        try:
            assert self._session is not None, "not started"
            async with self._session.post(
                self.url, data=json.dumps(alerts), headers=headers, server_hostname=self.config.tls.server_name_override
            ) as response:
                answer = (await response.read())[:300].decode(errors="replace")
        except aiohttp.ClientError as error:
            raise RetryableError(f"cannot reach {self.url}: {error}") from None
        if response.status // 100 == 2:
            return
        message = f"HTTP {response.status} from {self.url}: {answer}"
        if response.status >= 500 or response.status == 429:
            raise RetryableError(message, throttled=response.status == 429)
        raise PermanentError(message)

    def alerts_of(self, batch: Batch) -> list[dict]:
        """The Alertmanager alerts (``postableAlert`` objects) of every log record in ``batch``."""
        alerts = []
        resource_entry, resource_found = None, {}
        for entry, _, records in scopes(batch):
            if entry is not resource_entry:
                resource_entry = entry
                resource_found = {kv.key: kv.value for kv in entry.resource.attributes if kv.key in self._resource_names}
            alerts += [self._alert(record, resource_found) for record in records]
        return alerts

    def _alert(self, record, resource_found: dict) -> dict:
        own = {
            kv.key: kv.value
            for kv in record.attributes
            if kv.key in self._record_names
            or kv.key in (names.ALERT_NAME, names.ALERT_STATUS, names.INCIDENT_DURATION)
            or kv.key == self.config.severity_attribute
        }
        labels = {
            "alertname": any_value_text(own[names.ALERT_NAME])
            if names.ALERT_NAME in own
            else record.event_name or DEFAULT_ALERT_NAME,
            "severity": self._severity(record, own),
        }
        for label, reference in self._labels.items():
            value = record_text(record, reference, resource_found if reference.level == "resource" else own)
            if value:
                labels[label] = value
        annotations = {label_name(kv.key): _text(kv.value) for kv in record.attributes}
        annotations["summary"] = any_value_text(record.body)
        if record.trace_id:
            annotations["trace_id"] = record.trace_id.hex()
        if record.span_id:
            annotations["span_id"] = record.span_id.hex()
        when = record_time(record, Signal.LOGS)
        duration = any_value_number(own[names.INCIDENT_DURATION]) if names.INCIDENT_DURATION in own else None
        starts = when - int((duration or 0.0) * 1e9)
        alert: dict[str, Any] = {"labels": labels, "annotations": annotations}
        if when:
            alert["startsAt"] = _rfc3339(starts)
        if names.ALERT_STATUS in own and any_value_text(own[names.ALERT_STATUS]) == "resolved":
            alert["endsAt"] = _rfc3339(max(when, starts)) if when else _rfc3339(_now())
        if self.config.generator_url:
            alert["generatorURL"] = self.config.generator_url
        return alert

    def _severity(self, record, own: dict) -> str:
        """``severity_attribute``'s value, else the record's severity text, else ``severity``."""
        attribute = self.config.severity_attribute
        if attribute and attribute in own:
            return any_value_text(own[attribute]) or self.config.severity
        return record.severity_text or self.config.severity


def _text(value) -> str:
    """An attribute value as annotation text; lists are joined with commas."""
    python = any_value_to_python(value)
    if isinstance(python, list):
        return ", ".join(str(item) for item in python)
    return any_value_text(value)


def _rfc3339(nanos: int) -> str:
    seconds, fraction = divmod(nanos, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def _now() -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp() * 1e9)
