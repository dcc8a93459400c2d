"""The ``anomaly_alerts`` connector: one alert per incident, not one per record.

Placed as an exporter of a traces or logs pipeline after an ``anomaly``
processor, and as the receiver of a logs pipeline, it reads the incident
marks the processor writes (``otelml.incident.open``, ``otelml.incident.id``,
``otelml.anomaly``, ``otelml.incident.predicted``) and sends an alert log
record when an incident opens, while it goes on (``repeat_interval``) and
when it is resolved; :mod:`.incidents` decides which, :mod:`.text` what they
say. The scored records themselves pass on untouched in their own pipeline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_ERROR, SEVERITY_NUMBER_INFO, SEVERITY_NUMBER_WARN
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otelml import conventions as names
from otelml.component import Component, CreateSettings, Host
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.connectors.anomaly_alerts.incidents import Alert, Incidents
from otelml.connectors.anomaly_alerts.metadata import ALERTS
from otelml.connectors.anomaly_alerts.text import ANOMALY, PREDICTED, Details, alert_text, severity
from otelml.encoding import add_attributes, any_value_to_python
from otelml.pdata import Batch, Signal, count_items, record_time, scopes
from otelml.references import any_value_text

SEVERITY_NUMBERS = {"critical": SEVERITY_NUMBER_ERROR, "warning": SEVERITY_NUMBER_WARN, "info": SEVERITY_NUMBER_INFO}
KINDS = {ANOMALY: "anomaly", PREDICTED: "predicted_incident"}
# Alerts kept while the logs pipeline refuses them; beyond this the oldest are dropped (and counted).
MAX_WAITING = 10_000
_MARKS = frozenset({names.INCIDENT_ID, names.INCIDENT_OPEN, names.ANOMALY, names.PREDICTED})


@dataclasses.dataclass(frozen=True)
class Source:
    """The parts of a scored record an alert repeats: its resource, trace context and ``otelml.*`` details."""

    resource: Resource
    schema_url: str
    trace_id: bytes
    span_id: bytes
    span_name: str
    details: dict


class AnomalyAlertsConnector(Component):
    """Turns the incidents of scored records into alert log records for the logs pipelines it feeds."""

    mutates_data = False

    def __init__(self, settings: CreateSettings, config: AnomalyAlertsConfig, consumers: dict):
        self.config = config
        self.logs = consumers[Signal.LOGS]
        self.logger = settings.logger
        self.incidents = Incidents(config.resolve_after, config.repeat_interval)
        # The wall clock that resolves the alerts of keys gone silent (monotonic seconds).
        self.clock = time.monotonic
        self._name = str(settings.id)
        self._telemetry = settings.telemetry
        self._alerts = settings.telemetry.metric(ALERTS)
        self._waiting = ExportLogsServiceRequest()
        self._sending = asyncio.Lock()
        self._timer: asyncio.Task | None = None

    async def start(self, host: Host) -> None:
        self._timer = asyncio.create_task(self._expire_regularly())

    async def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        await self._send()
        if self._waiting.resource_logs:
            self._drop(self._waiting, "shutdown")
            self._waiting = ExportLogsServiceRequest()

    async def consume(self, batch: Batch) -> None:
        for alert in self._alerts_of(batch):
            self._write(alert)
        await self._send()

    async def expire(self) -> None:
        """Resolve the alerts of keys that went silent for ``resolve_after``, and send what waits."""
        for alert in self.incidents.expire(self.clock()):
            self._write(alert)
        await self._send()

    async def _expire_regularly(self) -> None:
        interval = min(1.0, self.config.resolve_after / 4)
        while True:
            await asyncio.sleep(interval)
            await self.expire()

    def _alerts_of(self, batch: Batch) -> list[Alert]:
        signal = Signal.of(batch)
        traces = signal is Signal.TRACES
        arrived = self.clock()
        alerts: list[Alert] = []
        for resource, _, records in scopes(batch):
            for record in records:
                marks = {kv.key: kv.value for kv in record.attributes if kv.key in _MARKS}
                if not marks:
                    continue
                incident_id = any_value_text(marks[names.INCIDENT_ID]) if names.INCIDENT_ID in marks else ""
                opens = _flag(marks, names.INCIDENT_OPEN)
                flagged = _flag(marks, names.ANOMALY)
                when = record_time(record, signal)
                if incident_id:
                    if not self.config.anomalies:
                        continue  # a prediction inside an incident is no prediction
                    source = _source(resource, record, traces) if opens or flagged else None
                    key = _key(source, incident_id)
                    alerts += self.incidents.anomaly(
                        incident_id,
                        self._group(resource.resource, key),
                        opens=opens,
                        flagged=flagged,
                        time=when,
                        arrived=arrived,
                        severity=self._severity(ANOMALY, source),
                        source=source,
                        member=key,
                    )
                elif self.config.predicted_incidents and _flag(marks, names.PREDICTED):
                    source = _source(resource, record, traces)
                    if not self._warns_in_time(source):
                        continue
                    key = _key(source, _resource_text(resource.resource))
                    alerts += self.incidents.predicted(
                        self._group(resource.resource, key),
                        time=when,
                        arrived=arrived,
                        severity=self._severity(PREDICTED, source),
                        source=source,
                        member=key,
                    )
        return alerts

    def _group(self, resource: Resource, key: str) -> str:
        """The group whose alert a key's incident joins: the key itself, or its ``group_by`` resource attributes."""
        if self.config.group_by is None:
            return key
        values = {kv.key: any_value_text(kv.value) for kv in resource.attributes if kv.key in self.config.group_by}
        return " ".join(f"{name}={values.get(name, '')}" for name in self.config.group_by)

    def _warns_in_time(self, source: Source) -> bool:
        """Whether a prediction leaves ``min_lead`` before its crossing (one that does not say when does)."""
        lead = source.details.get(names.CROSSING_SECONDS)
        return not isinstance(lead, (int, float)) or lead >= self.config.min_lead

    def _severity(self, name: str, source: Source | None) -> str:
        return severity(name, Details.of(source.details), self.config.critical_score) if source is not None else ""

    def _write(self, alert: Alert) -> None:
        incident = alert.incident
        opening = incident.opening
        # A grouped alert speaks of its opening key throughout (its labels must not change between firing
        # and resolved); a newer record refreshes the details only when it is of that key.
        opening_key = incident.members[0] if incident.members else incident.key
        latest = alert.source if _key(alert.source, opening_key) == opening_key else opening
        details = {**opening.details, **latest.details, names.KEY: opening_key}
        details.pop(names.INCIDENT_OPEN, None)  # the alert's status says whether it opens
        out_resource = self._waiting.resource_logs.add()
        out_resource.resource.CopyFrom(latest.resource)
        out_resource.schema_url = latest.schema_url
        out_scope = out_resource.scope_logs.add()
        out_scope.scope.name = names.ALERT_SCOPE
        record = out_scope.log_records.add()
        record.time_unix_nano = alert.time
        record.observed_time_unix_nano = time.time_ns()
        record.severity_text = incident.severity
        record.severity_number = SEVERITY_NUMBERS[incident.severity]
        record.event_name = names.ALERT_EVENT
        record.trace_id = latest.trace_id
        record.span_id = latest.span_id
        record.body.string_value = alert_text(
            incident.name, Details.of(details), alert.duration, alert.resolved, alert.came_true, others=len(incident.members) - 1
        )
        details.update(
            {
                names.ALERT_NAME: incident.name,
                names.ALERT_STATUS: "resolved" if alert.resolved else "firing",
                names.INCIDENT_DURATION: alert.duration,
            }
        )
        if self.config.group_by is not None:
            details[names.ALERT_KEYS] = list(incident.members)
        if latest.span_name:
            details[names.SOURCE_SPAN_NAME] = latest.span_name
        add_attributes(record.attributes, details)
        self._alerts.labels(self._name, KINDS[incident.name], alert.event).inc()

    async def _send(self) -> None:
        """Pass the waiting alerts on; those the logs pipeline refuses wait for the next try."""
        async with self._sending:
            if not self._waiting.resource_logs:
                return
            waiting, self._waiting = self._waiting, ExportLogsServiceRequest()
            try:
                await self.logs.consume(waiting)
            except Exception as error:
                waiting.MergeFrom(self._waiting)  # newer alerts made meanwhile go after the older ones
                self._waiting = waiting
                self.logger.warning(
                    "the alerts pipeline refused %d alerts, trying again in a moment: %s", count_items(waiting), error
                )
                if count_items(waiting) > MAX_WAITING:
                    self._drop(waiting, "alerts_waiting_full")
                    self._waiting = ExportLogsServiceRequest()

    def _drop(self, alerts: ExportLogsServiceRequest, reason: str) -> None:
        count = count_items(alerts)
        self._telemetry.drop(self._name, Signal.LOGS, count, reason)
        self.logger.error("dropping %d alerts the alerts pipeline did not take (%s)", count, reason)


def _flag(marks: dict, name: str) -> bool:
    return name in marks and marks[name].bool_value


def _source(resource, record, traces: bool) -> Source:
    own_resource = Resource()
    own_resource.CopyFrom(resource.resource)  # the batch is not ours to keep
    return Source(
        own_resource,
        resource.schema_url,
        record.trace_id,
        record.span_id,
        record.name if traces else "",
        # The record's template names the message a novelty alert is about.
        {
            kv.key: any_value_to_python(kv.value)
            for kv in record.attributes
            if kv.key.startswith(names.PREFIX) or kv.key == names.TEMPLATE
        },
    )


def _key(source: Source | None, fallback: str) -> str:
    """The alert's key: the processor's ``otelml.key`` (written with ``alerts: true``), else ``fallback``."""
    key = source.details.get(names.KEY) if source is not None else None
    return str(key) if key else fallback


def _resource_text(resource: Resource) -> str:
    return " ".join(f"{kv.key}={any_value_text(kv.value)}" for kv in resource.attributes)
