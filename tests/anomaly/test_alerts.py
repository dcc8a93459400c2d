"""Alerts from the processor's incidents: the opening record carries the details, the connector makes one alert of it."""

from __future__ import annotations

import re

import pytest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.connectors.anomaly_alerts.connector import AnomalyAlertsConnector
from otelml.pdata import Signal
from otelml.service import Service
from otelml.telemetry import Telemetry
from tests.anomaly.support import START, SpanSpec, attribute, make_processor, records_of, traces
from tests.anomaly.test_scoring import steady
from tests.conftest import Collect, build_config, logs_of, read_batches


async def scored_with_spike(**settings):
    processor = make_processor(warmup=50, **settings)
    batch = traces(steady(300) + [SpanSpec("checkout", "GET /cart", START + 300, 2000.0)])
    await processor.consume(batch)
    return batch


async def test_the_record_opening_an_incident_carries_the_alert_details():
    batch = await scored_with_spike(alerts=True)
    flagged = [r for r in records_of(batch) if attribute(r, "otelml.anomaly")]
    assert len(flagged) == 1
    [span] = flagged
    assert attribute(span, "otelml.incident.open") is True
    assert attribute(span, "otelml.key") == "service.name=checkout span.name=GET /cart"
    assert (attribute(span, "otelml.target"), attribute(span, "otelml.unit")) == ("duration", "ms")
    assert attribute(span, "otelml.actual") == pytest.approx(2000.0)
    low, high = attribute(span, "otelml.range.low"), attribute(span, "otelml.range.high")
    assert low < attribute(span, "otelml.expected") < high < 2000.0
    assert attribute(span, "otelml.expected") == pytest.approx(50.0, rel=0.1)
    assert [value.string_value for value in attribute(span, "otelml.models").values] == ["seasonal_profile", "ewm_mean"]
    assert attribute(span, "otelml.level.recent") is None, "no level model fired: no levels"
    unflagged = [r for r in records_of(batch) if not attribute(r, "otelml.anomaly")]
    assert all(attribute(r, "otelml.key") is None for r in unflagged)
    sink = Collect()
    connector = AnomalyAlertsConnector(
        CreateSettings(ComponentID("anomaly_alerts"), Kind.CONNECTOR, Telemetry()), AnomalyAlertsConfig(), {Signal.LOGS: sink}
    )
    await connector.consume(batch)
    [alert] = logs_of(sink.batches)
    assert alert.severity_text in ("critical", "warning") and alert.event_name == "otelml.alert"
    assert alert.body.string_value.startswith(
        "anomaly in service.name=checkout span.name=GET /cart: duration 2,000 ms, expected "
    )
    assert alert.trace_id == span.trace_id and alert.span_id == span.span_id
    assert attribute(alert, "otelml.source.span.name") == "GET /cart"
    resource = sink.batches[0].resource_logs[0].resource
    assert [(kv.key, kv.value.string_value) for kv in resource.attributes] == [("service.name", "checkout")]


async def test_a_level_shift_alert_says_what_level_moved_where_in_the_targets_units():
    processor = make_processor(warmup=50, alerts=True, models=["ewm_mean", "level_shift"])
    batch = traces(steady(400) + steady(60, start=START + 400, level_ms=80.0, seed=2))
    await processor.consume(batch)
    flagged = [r for r in records_of(batch) if attribute(r, "otelml.anomaly")]
    models = [[v.string_value for v in attribute(r, "otelml.models").values] for r in flagged]
    assert models[0] == ["ewm_mean"] and attribute(flagged[0], "otelml.level.recent") is None, "the jump itself"
    shifted = [r for r, fired in zip(flagged, models) if "level_shift" in fired]
    assert shifted, "the lasting shift to 80 ms is flagged by level_shift too"
    for record in shifted:
        assert attribute(record, "otelml.level.usual") == pytest.approx(50.0, rel=0.05)
        assert 55.0 < attribute(record, "otelml.level.recent") < 80.0, "the recent level is on its way to 80 ms"
    sink = Collect()
    connector = AnomalyAlertsConnector(
        CreateSettings(ComponentID("anomaly_alerts"), Kind.CONNECTOR, Telemetry()),
        AnomalyAlertsConfig(repeat_interval="1s"),
        {Signal.LOGS: sink},
    )
    await connector.consume(batch)
    texts = [alert.body.string_value for alert in logs_of(sink.batches)]
    assert " level " not in texts[0]
    assert any(
        re.search(
            r": duration level (5[5-9]|[67]\d)(\.\d)? ms against a usual (4[89]|5[0-2])(\.\d)? ms "
            r"\(this record [\d.]+ ms, expected [\d.]+ ms.*\); score 0\.\d\d \(.*level_shift",
            text,
        )
        for text in texts[1:]
    ), texts


async def test_without_alert_details_the_alert_names_the_incident_and_its_score():
    batch = await scored_with_spike()
    sink = Collect()
    connector = AnomalyAlertsConnector(
        CreateSettings(ComponentID("anomaly_alerts"), Kind.CONNECTOR, Telemetry()), AnomalyAlertsConfig(), {Signal.LOGS: sink}
    )
    await connector.consume(batch)
    [alert] = logs_of(sink.batches)
    incident = attribute(alert, "otelml.incident.id")
    assert incident and attribute(alert, "otelml.key") == incident
    assert alert.body.string_value.startswith(f"anomaly in {incident}: ") and "; score 0." in alert.body.string_value


async def test_incidents_only_connector_skips_anomalies():
    batch = await scored_with_spike()
    sink = Collect()
    connector = AnomalyAlertsConnector(
        CreateSettings(ComponentID("anomaly_alerts"), Kind.CONNECTOR, Telemetry()),
        AnomalyAlertsConfig(anomalies=False),
        {Signal.LOGS: sink},
    )
    await connector.consume(batch)
    assert all(attribute(r, "otelml.incident.predicted") for r in logs_of(sink.batches))


async def test_alerts_flow_into_their_own_pipeline_through_the_service(tmp_path):
    config = build_config(
        {
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
            "processors": {"anomaly": {"warmup": 50, "alerts": True}},
            "connectors": {"anomaly_alerts": None},
            "exporters": {"file/alerts": {"path": str(tmp_path / "alerts.jsonl"), "flush_interval": "10ms"}},
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": ["anomaly"], "exporters": ["anomaly_alerts"]},
                    "logs/alerts": {"receivers": ["anomaly_alerts"], "exporters": ["file/alerts"]},
                },
                "telemetry": {"metrics": {"readers": []}},
            },
        }
    )
    service = Service(config)
    await service.start()
    try:
        [entry] = [c for c in service.graph.receivers.values()]
        pipeline_entry = entry.consumers[Signal.TRACES]
        await pipeline_entry.consume(traces(steady(300) + [SpanSpec("checkout", "GET /cart", START + 300, 2000.0)]))
    finally:
        await service.shutdown()
    alerts = logs_of(read_batches(tmp_path / "alerts.jsonl", Signal.LOGS))
    assert [attribute(a, "otelml.actual") for a in alerts if attribute(a, "otelml.anomaly")] == [pytest.approx(2000.0)]
    assert service.telemetry.value("otelml_anomaly_alerts_total", connector="anomaly_alerts", kind="anomaly", event="open") == 1
