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
        self._redact = {Signal.TRACES: self._redact_traces, Signal.LOGS: self._redact_logs,
                        Signal.METRICS: self._redact_metrics}[signal]

    async def consume(self, batch: Batch) -> None:
        self._redact(batch)
        await self.next.consume(batch)

    def _redact_traces(self, batch) -> None:
        redact = self.redactor.redact_attributes
        for resource_spans in batch.resource_spans:
            redact(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                redact(scope_spans.scope.attributes)
                for span in scope_spans.spans:
                    redact(span.attributes)
                    for event in span.events:
                        redact(event.attributes)
                    for link in span.links:
                        redact(link.attributes)

    def _redact_logs(self, batch) -> None:
        redact = self.redactor.redact_attributes
        for resource_logs in batch.resource_logs:
            redact(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                redact(scope_logs.scope.attributes)
                for record in scope_logs.log_records:
                    redact(record.attributes)
                    self.redactor.redact_body(record.body, record.attributes)

    def _redact_metrics(self, batch) -> None:
        redact = self.redactor.redact_attributes
        for resource_metrics in batch.resource_metrics:
            redact(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                redact(scope_metrics.scope.attributes)
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in (getattr(metric, kind).data_points if kind else ()):
                        redact(point.attributes)
