"""The ``anomaly_alerts`` connector: one log record per flagged span or log record.

Placed as an exporter of a traces or logs pipeline after an ``anomaly``
processor, and as the receiver of a logs pipeline, it reads the
``otelml.anomaly`` and ``otelml.incident.predicted`` attributes of every
record and turns each flagged one into an alert log record, like the
collector's ``exceptions`` connector turns span exceptions into logs.
"""

from __future__ import annotations

import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_ERROR, SEVERITY_NUMBER_WARN

from otelml.component import Component, CreateSettings
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.connectors.anomaly_alerts.metadata import ALERTS
from otelml.pdata import Batch, Signal

SCOPE_NAME = "otelml.anomaly_alerts"
EVENT_NAME = "otelml.alert"
ANOMALY = "otelml.anomaly"
PREDICTED = "otelml.incident.predicted"
REASON = "otelml.alert.reason"
SCORE = "otelml.score"
FORECAST = "otelml.forecast"
PREFIX = "otelml."
SPAN_NAME = "otelml.source.span.name"


class AnomalyAlertsConnector(Component):
    """Turns flagged records into alert log records for the logs pipelines it feeds."""

    mutates_data = False

    def __init__(self, settings: CreateSettings, config: AnomalyAlertsConfig, consumers: dict):
        self.config = config
        self.logs = consumers[Signal.LOGS]
        self._alerts = settings.telemetry.metric(ALERTS)
        self._name = str(settings.id)

    async def consume(self, batch: Batch) -> None:
        alerts = self.alerts_of(batch)
        if alerts.resource_logs:
            await self.logs.consume(alerts)

    def alerts_of(self, batch: Batch) -> ExportLogsServiceRequest:
        traces = Signal.of(batch) is Signal.TRACES
        alerts = ExportLogsServiceRequest()
        observed = time.time_ns()
        for resource in getattr(batch, Signal.of(batch).resource_field):
            out_records = None
            for scope in (resource.scope_spans if traces else resource.scope_logs):
                for record in (scope.spans if traces else scope.log_records):
                    found = {kv.key: kv.value for kv in record.attributes if kv.key.startswith(PREFIX)}
                    anomaly = self.config.anomalies and ANOMALY in found and found[ANOMALY].bool_value
                    predicted = self.config.predicted_incidents and PREDICTED in found and found[PREDICTED].bool_value
                    if not (anomaly or predicted):
                        continue
                    if out_records is None:
                        out_resource = alerts.resource_logs.add()
                        out_resource.resource.CopyFrom(resource.resource)
                        out_resource.schema_url = resource.schema_url
                        out_scope = out_resource.scope_logs.add()
                        out_scope.scope.name = SCOPE_NAME
                        out_records = out_scope.log_records
                    self._alert(out_records.add(), record, found, anomaly, predicted, traces, observed)
                    self._alerts.labels(self._name, "anomaly" if anomaly else "predicted_incident").inc()
        return alerts

    @staticmethod
    def _alert(alert, record, found: dict, anomaly: bool, predicted: bool, traces: bool, observed: int) -> None:
        alert.time_unix_nano = record.end_time_unix_nano if traces else (record.time_unix_nano or record.observed_time_unix_nano)
        alert.observed_time_unix_nano = observed
        alert.severity_number = SEVERITY_NUMBER_ERROR if anomaly else SEVERITY_NUMBER_WARN
        alert.severity_text = "ERROR" if anomaly else "WARN"
        alert.event_name = EVENT_NAME
        alert.trace_id = record.trace_id
        alert.span_id = record.span_id
        if REASON in found:
            alert.body.string_value = found[REASON].string_value
        else:
            parts = [f"anomaly: score {found[SCORE].double_value:.3f}"] if anomaly else []
            if predicted:
                parts.append(f"predicted incident: score forecast {found[FORECAST].double_value:.3f}")
            alert.body.string_value = "; ".join(parts)
        for key, value in found.items():
            attribute = alert.attributes.add()
            attribute.key = key
            attribute.value.CopyFrom(value)
        if traces:
            attribute = alert.attributes.add()
            attribute.key = SPAN_NAME
            attribute.value.string_value = record.name
