"""Hand-made scored records, carrying what the anomaly processor writes, for the alerting tests."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelml import conventions as names
from otelml.component import ComponentID, CreateSettings, Kind
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.connectors.anomaly_alerts.connector import AnomalyAlertsConnector
from otelml.encoding import add_attributes, any_value_to_python
from otelml.pdata import Signal
from otelml.service import Service
from otelml.telemetry import Telemetry
from tests.conftest import Collect, build_config, logs_of

START = 1_700_000_000  # seconds


class Refusing(Collect):
    """The logs pipeline after the connector: keeps what it is given, or refuses while ``refuse`` is set."""

    def __init__(self):
        super().__init__()
        self.refuse: Exception | None = None

    async def consume(self, batch):
        if self.refuse is not None:
            raise self.refuse
        await super().consume(batch)

    @property
    def alerts(self) -> list:
        return logs_of(self.batches)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def connector(telemetry: Telemetry | None = None, **settings) -> tuple[AnomalyAlertsConnector, Refusing, FakeClock]:
    sink, clock = Refusing(), FakeClock()
    made = AnomalyAlertsConnector(
        CreateSettings(ComponentID("anomaly_alerts"), Kind.CONNECTOR, telemetry or Telemetry()),
        AnomalyAlertsConfig.model_validate(settings),
        {Signal.LOGS: sink},
    )
    made.clock = clock
    return made, sink, clock


def marks(
    incident: str | None = None,
    opens: bool = False,
    flagged: bool = False,
    predicted: bool = False,
    score: float = 0.1,
    **details,
) -> dict:
    """The attributes of one scored record: its score and marks, plus ``otelml.*`` details given by short name
    (``key``, ``target``, ``unit``, ``actual``, ``expected``, ``low``, ``high``, ``models``, ``limit``, ...)."""
    short = {
        "key": names.KEY,
        "target": names.TARGET,
        "unit": names.UNIT,
        "actual": names.ACTUAL,
        "expected": names.EXPECTED,
        "low": names.RANGE_LOW,
        "high": names.RANGE_HIGH,
        "models": names.MODELS,
        "forecast": names.FORECAST,
        "target_forecast": names.TARGET_FORECAST,
        "limit": names.LIMIT,
        "crossing": names.CROSSING_SECONDS,
    }
    values = {names.SCORE: score, names.ANOMALY: flagged, names.PREDICTED: predicted}
    if incident is not None:
        values[names.INCIDENT_ID] = incident
    if opens:
        values[names.INCIDENT_OPEN] = True
    values.update({short[name]: value for name, value in details.items()})
    return values


def spans(*records: tuple[str, str, float, dict]) -> ExportTraceServiceRequest:
    """Spans given as ``(service, span name, end time in seconds after START, attributes)``."""
    batch = ExportTraceServiceRequest()
    for number, (service, name, when, attributes) in enumerate(records):
        resource = batch.resource_spans.add()
        add_attributes(resource.resource.attributes, {"service.name": service})
        span = resource.scope_spans.add().spans.add()
        span.name = name
        span.trace_id = (number + 1).to_bytes(16, "big")
        span.span_id = (number + 1).to_bytes(8, "big")
        span.end_time_unix_nano = int((START + when) * 1e9)
        span.start_time_unix_nano = span.end_time_unix_nano - 1_000_000
        add_attributes(span.attributes, attributes)
    return batch


def logs(*records: tuple[dict, float, dict]) -> ExportLogsServiceRequest:
    """Log records given as ``(resource attributes, time in seconds after START, attributes)``."""
    batch = ExportLogsServiceRequest()
    for resource_attributes, when, attributes in records:
        resource = batch.resource_logs.add()
        add_attributes(resource.resource.attributes, resource_attributes)
        record = resource.scope_logs.add().log_records.add()
        record.time_unix_nano = int((START + when) * 1e9)
        add_attributes(record.attributes, attributes)
    return batch


def attribute(record, name: str):
    for kv in record.attributes:
        if kv.key == name:
            return any_value_to_python(kv.value)
    return None


def alerting_service(resolve_after: str, exporter: str, settings: dict) -> Service:
    """A service whose traces pipeline feeds the anomaly_alerts connector, whose alerts go to ``exporter``.

    Scored spans go in through :func:`scored_spans`.
    """
    return Service(
        build_config(
            {
                "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
                "connectors": {"anomaly_alerts": {"resolve_after": resolve_after}},
                "exporters": {exporter: settings},
                "service": {
                    "pipelines": {
                        "traces": {"receivers": ["otlp"], "exporters": ["anomaly_alerts"]},
                        "logs/alerts": {"receivers": ["anomaly_alerts"], "exporters": [exporter]},
                    },
                    "telemetry": {"metrics": {"readers": []}},
                },
            }
        )
    )


def scored_spans(service: Service):
    """Where the service's traces pipeline takes scored spans."""
    return service.graph.receivers[ComponentID("otlp")].consumers[Signal.TRACES]
