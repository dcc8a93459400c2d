"""The ``debug`` exporter: shows what flows through a pipeline on stderr.

``basic`` logs one summary line per batch; ``normal`` one line per span,
log record or metric (with any ``otelml.*`` scores); ``detailed`` the whole
batch in protobuf text form.
"""

from __future__ import annotations

from otelml.component import Component, CreateSettings
from otelml.exporters.debug.config import DebugConfig
from otelml.pdata import Batch, Signal, count_items


class DebugExporter(Component):
    mutates_data = False

    def __init__(self, settings: CreateSettings, config: DebugConfig):
        self.logger = settings.logger
        self.verbosity = config.verbosity
        self._sent = settings.telemetry.exporter_sent
        self._id = str(settings.id)

    async def consume(self, batch: Batch) -> None:
        signal = Signal.of(batch)
        items = count_items(batch)
        resources = len(getattr(batch, signal.resource_field))
        self.logger.info("%s: %d resources, %d %s", signal.value.capitalize(), resources, items, signal.item_name)
        if self.verbosity == "normal":
            for line in _record_lines(batch, signal):
                self.logger.info("  %s", line)
        elif self.verbosity == "detailed":
            self.logger.info("%s", batch)
        self._sent(self._id, signal, items)


def _record_lines(batch: Batch, signal: Signal):
    for resource in getattr(batch, signal.resource_field):
        service = next((a.value.string_value for a in resource.resource.attributes if a.key == "service.name"), "")
        if signal is Signal.TRACES:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
                    yield f"{service} {span.name} trace={span.trace_id.hex()} span={span.span_id.hex()} {duration_ms:.1f}ms{_scores(span.attributes)}"
        elif signal is Signal.LOGS:
            for scope in resource.scope_logs:
                for record in scope.log_records:
                    body = record.body.WhichOneof("value")
                    text = getattr(record.body, body) if body else ""
                    yield f"{service} {record.severity_text or record.severity_number} {str(text)[:120]!r}{_scores(record.attributes)}"
        else:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    yield f"{service} {metric.name} ({metric.WhichOneof('data')})"


def _scores(attributes) -> str:
    scores = []
    for attribute in attributes:
        if attribute.key.startswith("otelml."):
            kind = attribute.value.WhichOneof("value")
            value = getattr(attribute.value, kind) if kind else None
            scores.append(f"{attribute.key}={value:.3f}" if isinstance(value, float) else f"{attribute.key}={value}")
    return (" " + " ".join(scores)) if scores else ""
