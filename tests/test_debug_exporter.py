"""The debug exporter's lines: one per record at verbosity normal, naming the service, with otelml scores."""

from __future__ import annotations

import logging

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.encoding import add_attributes
from otelml.exporters.debug.config import DebugConfig
from otelml.exporters.debug.exporter import DebugExporter
from otelml.pdata import Signal
from otelml.telemetry import Telemetry


async def test_normal_verbosity_logs_each_record_with_its_service_and_scores(caplog):
    telemetry = Telemetry()
    exporter = DebugExporter(CreateSettings(ComponentID("debug"), Kind.EXPORTER, telemetry), DebugConfig(verbosity="normal"))
    batch = Signal.LOGS.request_type()
    resource_logs = batch.resource_logs.add()
    add_attributes(resource_logs.resource.attributes, {"service.name": "checkout"})
    for body, score in (("payment failed", 0.9), ("cart saved", 0.1)):
        record = resource_logs.scope_logs.add().log_records.add(severity_text="ERROR")
        record.body.string_value = body
        add_attributes(record.attributes, {"otelml.score": score, "http.route": "/cart"})
    with caplog.at_level(logging.INFO, logger="otelml"):
        await exporter.consume(batch)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1:] == [
        "  checkout ERROR 'payment failed' otelml.score=0.900",
        "  checkout ERROR 'cart saved' otelml.score=0.100",
    ]
    assert telemetry.value("otelcol_exporter_sent_log_records_total", exporter="debug") == 2
