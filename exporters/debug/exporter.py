"""The ``debug`` exporter: shows what flows through a pipeline on stderr.

``basic`` logs one summary line per batch; ``normal`` one line per span,
log record or metric (with any ``otelml.*`` scores); ``detailed`` the whole
batch in protobuf text form.
"""

from __future__ import annotations

from otelml.component import Component, CreateSettings
from otelml.conventions import PREFIX, SERVICE_NAME
from otelml.exporters.debug.config import DebugConfig
from otelml.pdata import Batch, Signal, count_items, scopes
from otelml.references import any_value_text, find_attributes

_SERVICE = frozenset({SERVICE_NAME})


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
    for resource_entry, _, records in scopes(batch):
        found = find_attributes(resource_entry.resource.attributes, _SERVICE)
        service = any_value_text(found[SERVICE_NAME]) if found else ""
        for record in records:
            if signal is Signal.TRACES:
                duration_ms = (record.end_time_unix_nano - record.start_time_unix_nano) / 1e6
                yield (
                    f"{service} {record.name} trace={record.trace_id.hex()} span={record.span_id.hex()} "
                    f"{duration_ms:.1f}ms{_scores(record.attributes)}"
                )
            elif signal is Signal.LOGS:
                yield f"{service} {record.severity_text or record.severity_number} {any_value_text(record.body)[:120]!r}{_scores(record.attributes)}"
            else:
                yield f"{service} {record.name} ({record.WhichOneof('data')})"


def _scores(attributes) -> str:
    scores = []
    for attribute in attributes:
        if attribute.key.startswith(PREFIX):
            kind = attribute.value.WhichOneof("value")
            value = getattr(attribute.value, kind) if kind else None
            scores.append(f"{attribute.key}={value:.3f}" if isinstance(value, float) else f"{attribute.key}={value}")
    return (" " + " ".join(scores)) if scores else ""
