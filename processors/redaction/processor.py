"""The ``redaction`` processor: personal data and secrets removed before telemetry leaves.

It covers resource, scope, span, span event, span link, log record and
metric data point attributes, and log bodies; see
:mod:`otelml.processors.redaction.redactor` for what happens to each value.
Batches are changed in place, so the pipeline gives this processor its own
copy when another branch shares the data.
"""

from __future__ import annotations

from otelml.component import Component, CreateSettings
from otelml.consumer import Consumer
from otelml.pdata import Batch, Signal
from otelml.processors.redaction.config import RedactionConfig
from otelml.processors.redaction.redactor import Redactor


class RedactionProcessor(Component):
    mutates_data = True

    def __init__(self, settings: CreateSettings, config: RedactionConfig, signal: Signal, next_consumer: Consumer):
        self.settings = settings
        self.config = config
        self.signal = signal
        self.next = next_consumer
        self.redactor = Redactor(config)
        self._scope_field, self._record_field = _FIELDS[signal]
        self._redact_record = {Signal.TRACES: self._redact_span, Signal.LOGS: self._redact_log_record,
                               Signal.METRICS: self._redact_metric}[signal]

    async def consume(self, batch: Batch) -> None:
        redact = self.redactor.redact_attributes
        for resource_group in getattr(batch, self.signal.resource_field):
            redact(resource_group.resource.attributes)
            for scope_group in getattr(resource_group, self._scope_field):
                redact(scope_group.scope.attributes)
                for record in getattr(scope_group, self._record_field):
                    self._redact_record(record)
        await self.next.consume(batch)

    def _redact_span(self, span) -> None:
        redact = self.redactor.redact_attributes
        redact(span.attributes)
        for event in span.events:
            redact(event.attributes)
        for link in span.links:
            redact(link.attributes)

    def _redact_log_record(self, record) -> None:
        self.redactor.redact_attributes(record.attributes)
        self.redactor.redact_body(record.body, record.attributes)

    def _redact_metric(self, metric) -> None:
        kind = metric.WhichOneof("data")
        for point in (getattr(metric, kind).data_points if kind else ()):
            self.redactor.redact_attributes(point.attributes)


# Per signal: the scope-level list of a resource, and the record list of a scope.
_FIELDS = {Signal.TRACES: ("scope_spans", "spans"), Signal.LOGS: ("scope_logs", "log_records"),
           Signal.METRICS: ("scope_metrics", "metrics")}
