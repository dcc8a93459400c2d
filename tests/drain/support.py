"""Building log batches and drain processors for the drain tests."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelml import conventions
from otelml.component import ComponentID, CreateSettings, Kind
from otelml.pdata import Signal
from otelml.processors.drain.config import DrainConfig
from otelml.processors.drain.processor import DrainProcessor
from otelml.telemetry import Telemetry
from tests.anomaly.support import Collect


def make_processor(telemetry: Telemetry | None = None, name: str = "", **settings) -> DrainProcessor:
    config = DrainConfig.model_validate(settings)
    create = CreateSettings(ComponentID("drain", name), Kind.PROCESSOR, telemetry or Telemetry())
    return DrainProcessor(create, config, Signal.LOGS, Collect())


def logs(*services: tuple[str, list[str]]) -> ExportLogsServiceRequest:
    """One resource per ``(service, bodies)``, each body a log record's string body."""
    request = ExportLogsServiceRequest()
    for service, bodies in services:
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.add(key="service.name").value.string_value = service
        records = resource_logs.scope_logs.add().log_records
        for body in bodies:
            records.add().body.string_value = body
    return request


def records(batch) -> list:
    return [r for rl in batch.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def attribute(record, name: str) -> str | None:
    """The string value of attribute ``name`` on ``record`` (None when absent); fails if it is there twice."""
    values = [kv.value.string_value for kv in record.attributes if kv.key == name]
    assert len(values) <= 1, f"{name} written {len(values)} times"
    return values[0] if values else None


def templates(batch) -> list[str | None]:
    return [attribute(record, conventions.TEMPLATE) for record in records(batch)]


def template_ids(batch) -> list[str | None]:
    return [attribute(record, conventions.TEMPLATE_ID) for record in records(batch)]
