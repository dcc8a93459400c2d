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
from otelml.pdata import Batch, Signal, data_points, resources, scopes
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
        self._redact_record = {
            Signal.TRACES: self._redact_span,
            Signal.LOGS: self._redact_log_record,
            Signal.METRICS: self._redact_metric,
        }[signal]

    async def consume(self, batch: Batch) -> None:
        redact = self.redactor.redact_attributes
        for resource_entry in resources(batch):
            redact(resource_entry.resource.attributes)
        for _, scope_entry, records in scopes(batch):
            redact(scope_entry.scope.attributes)
            for record in records:
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
        for point in data_points(metric):
            self.redactor.redact_attributes(point.attributes)
