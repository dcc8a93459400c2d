"""The anomaly_alerts connector: one alert per incident, its updates and its resolution."""

from __future__ import annotations

import pytest

from otelml import conventions as names
from otelml.configmodel import nested_problems
from otelml.connectors.anomaly_alerts.config import AnomalyAlertsConfig
from otelml.errors import RetryableError
from otelml.pdata import Signal
from otelml.telemetry import Telemetry
from tests.alerting.support import START, alerting_service, attribute, connector, logs, marks, scored_spans, spans
from tests.conftest import logs_of, read_batches
from tests.kafka.support import eventually

CART = "service.name=checkout span.name=GET /cart"
DETAILS = dict(
    key=CART,
    target="duration",
    unit="ms",
    actual=2000.0,
    expected=52.1,
    low=40.0,
    high=70.0,
    models=["ewm_mean", "seasonal_profile"],
)


def incident_spans(first: float, last: float, incident: str = "i1", score: float = 0.95, calm_until: float | None = None):
    """An incident of GET /cart flagged once a second from ``first`` to ``last``, then calm records of it until ``calm_until``."""
    records = [("checkout", "GET /cart", first, marks(incident, opens=True, flagged=True, score=score, **DETAILS))]
    records += [
        ("checkout", "GET /cart", t, marks(incident, flagged=True, score=score)) for t in range(int(first) + 1, int(last) + 1)
    ]
    if calm_until is not None:
        records += [("checkout", "GET /cart", t, marks(incident)) for t in range(int(last) + 1, int(calm_until) + 1)]
    return spans(*records)


async def test_an_incident_gives_one_alert_and_one_resolution_whatever_its_length():
    telemetry = Telemetry()
    alerts, sink, _ = connector(telemetry, resolve_after="30s")
    await alerts.consume(spans(*[("checkout", "GET /cart", t, marks()) for t in range(100)]))
    await alerts.consume(incident_spans(100, 160, calm_until=189))
    assert sink.alerts and len(sink.alerts) == 1, "still quiet for less than resolve_after: no resolution yet"
    await alerts.consume(incident_spans(100, 160, calm_until=191))  # the same records again (a retry), and two more

    opened, resolved = sink.alerts
    assert [attribute(a, names.ALERT_STATUS) for a in (opened, resolved)] == ["firing", "resolved"]
    assert opened.time_unix_nano == (START + 100) * 10**9 and attribute(opened, names.INCIDENT_DURATION) == 0
    assert resolved.time_unix_nano == (START + 160) * 10**9, "an incident ends with its last flagged record"
    assert attribute(resolved, names.INCIDENT_DURATION) == 60
    assert opened.severity_text == resolved.severity_text == "critical"
    assert opened.body.string_value == (
        f"anomaly in {CART}: duration 2,000 ms, expected 52.1 ms (usual 40 to 70 ms); "
        "score 0.95 (ewm_mean, seasonal_profile); just opened"
    )
    assert resolved.body.string_value.startswith(f"resolved: anomaly in {CART}: duration 2,000 ms")
    assert resolved.body.string_value.endswith("; lasted 1 min")
    assert opened.trace_id == (1).to_bytes(16, "big"), "the alert links to the trace of the record that opened it"
    assert attribute(opened, names.SOURCE_SPAN_NAME) == "GET /cart" and attribute(opened, names.ALERT_NAME) == "AnomalyIncident"
    assert attribute(opened, names.INCIDENT_OPEN) is None and attribute(opened, names.INCIDENT_ID) == "i1"
    assert telemetry.value("otelml_anomaly_alerts_total", connector="anomaly_alerts", kind="anomaly", event="open") == 1
    assert telemetry.value("otelml_anomaly_alerts_total", connector="anomaly_alerts", kind="anomaly", event="resolve") == 1


async def test_a_resolution_repeats_what_the_alert_opened_with_not_the_last_flicker():
    alerts, sink, _ = connector(resolve_after="10s", repeat_interval="2s")
    await alerts.consume(
        spans(
            ("checkout", "GET /cart", 0, marks("i1", opens=True, flagged=True, score=0.95, **DETAILS)),
            # The key settling back: a fast request the models, still expecting the spike, flag too.
            ("checkout", "GET /cart", 3, marks("i1", flagged=True, score=0.97, **{**DETAILS, "actual": 5.0, "expected": 900.0})),
            *[("checkout", "GET /cart", t, marks("i1")) for t in range(4, 15)],
        )
    )
    opened, update, resolved = sink.alerts
    assert "duration 5 ms" in update.body.string_value, "an update speaks of the newest flagged record"
    assert resolved.body.string_value == opened.body.string_value.replace("anomaly", "resolved: anomaly", 1).replace(
        "just opened", "lasted 3 s"
    )
    assert resolved.span_id == opened.span_id, "and links to the same trace"


async def test_an_incident_that_goes_on_is_updated_every_repeat_interval():
    alerts, sink, _ = connector(resolve_after="10s", repeat_interval="20s")
    await alerts.consume(incident_spans(0, 65, calm_until=80))
    assert [(attribute(a, names.ALERT_STATUS), attribute(a, names.INCIDENT_DURATION)) for a in sink.alerts] == [
        ("firing", 0),
        ("firing", 20),
        ("firing", 40),
        ("firing", 60),
        ("resolved", 65),
    ]
    update = sink.alerts[1]
    assert update.body.string_value.endswith("; going on for 20 s")
    assert attribute(update, names.ACTUAL) == 2000.0, "an update repeats the details of the record that opened the incident"


async def test_a_key_gone_silent_is_resolved_by_the_wall_clock():
    alerts, sink, clock = connector(resolve_after="30s")
    await alerts.consume(incident_spans(0, 5))
    clock.now = 29.0
    await alerts.expire()
    assert len(sink.alerts) == 1
    clock.now = 30.0
    await alerts.expire()
    assert [attribute(a, names.ALERT_STATUS) for a in sink.alerts] == ["firing", "resolved"]
    assert sink.alerts[1].time_unix_nano == (START + 5) * 10**9


async def test_an_incident_opened_while_its_key_still_has_an_alert_joins_that_alert():
    alerts, sink, _ = connector(resolve_after="30s")
    await alerts.consume(incident_spans(0, 5, incident="i1"))
    await alerts.consume(incident_spans(20, 25, incident="i2", calm_until=60))
    assert [(attribute(a, names.ALERT_STATUS), attribute(a, names.INCIDENT_DURATION)) for a in sink.alerts] == [
        ("firing", 0),
        ("resolved", 25),
    ]


def outage_spans(first: float, group_resolve: float):
    """One outage seen on three keys of two services a few seconds apart, then a new one ``group_resolve`` s later."""

    def key(service, name):
        return f"service.name={service} span.name={name}"

    return spans(
        (
            "checkout",
            "GET /cart",
            first,
            marks("a", opens=True, flagged=True, score=0.95, key=key("checkout", "GET /cart"), actual=900.0),
        ),
        (
            "payment",
            "Charge",
            first + 2,
            marks("b", opens=True, flagged=True, score=0.7, key=key("payment", "Charge"), actual=1.0),
        ),
        ("checkout", "PlaceOrder", first + 4, marks("c", opens=True, flagged=True, score=0.8, key=key("checkout", "PlaceOrder"))),
        (
            "checkout",
            "GET /cart",
            first + 5,
            marks("a", flagged=True, score=0.9, key=key("checkout", "GET /cart"), actual=1000.0),
        ),
        ("checkout", "GET /cart", first + 5 + group_resolve, marks("a")),
        ("payment", "Charge", first + 5 + group_resolve, marks("b")),
        (
            "payment",
            "Charge",
            first + 6 + group_resolve,
            marks("d", opens=True, flagged=True, score=0.7, key=key("payment", "Charge")),
        ),
    )


async def test_group_by_nothing_gives_one_alert_for_the_keys_of_one_outage():
    alerts, sink, _ = connector(resolve_after="10s", group_by=[])
    await alerts.consume(outage_spans(0, group_resolve=10))
    opened, resolved, later = sink.alerts
    assert [attribute(a, names.ALERT_STATUS) for a in (opened, resolved, later)] == ["firing", "resolved", "firing"]
    assert attribute(opened, names.KEY) == attribute(resolved, names.KEY) == "service.name=checkout span.name=GET /cart"
    assert attribute(resolved, names.ALERT_KEYS) == [
        "service.name=checkout span.name=GET /cart",
        "service.name=payment span.name=Charge",
        "service.name=checkout span.name=PlaceOrder",
    ]
    assert resolved.body.string_value.startswith(
        "resolved: anomaly in service.name=checkout span.name=GET /cart and 2 other keys: value 900; score 0.95;"
    ), "a grouped alert speaks of its opening key; its resolution repeats what it opened with"
    assert resolved.time_unix_nano == (START + 5) * 10**9
    assert attribute(later, names.ALERT_KEYS) == ["service.name=payment span.name=Charge"]


async def test_group_by_service_gives_one_alert_per_service():
    alerts, sink, _ = connector(resolve_after="10s", group_by=["service.name"])
    await alerts.consume(outage_spans(0, group_resolve=3))
    firing = [a for a in sink.alerts if attribute(a, names.ALERT_STATUS) == "firing"]
    assert [attribute(a, names.ALERT_KEYS) for a in firing] == [
        ["service.name=checkout span.name=GET /cart", "service.name=checkout span.name=PlaceOrder"],
        ["service.name=payment span.name=Charge"],
    ], "Charge's second incident joins its service's alert still open"


async def test_without_group_by_each_key_has_its_own_alert():
    alerts, sink, _ = connector(resolve_after="10s")
    await alerts.consume(outage_spans(0, group_resolve=10))
    firing = [a for a in sink.alerts if attribute(a, names.ALERT_STATUS) == "firing"]
    assert len(firing) == 4 and all(attribute(a, names.ALERT_KEYS) is None for a in firing)
    assert "other key" not in firing[0].body.string_value


async def test_a_flagged_record_of_an_incident_without_alert_opens_one():
    """After a restart the connector has no alert open for an incident that goes on: its next flagged record opens one."""
    alerts, sink, _ = connector()
    await alerts.consume(
        spans(
            ("checkout", "GET /cart", 0, marks("i1")),
            ("checkout", "GET /cart", 1, marks("i1", flagged=True, score=0.7, key=CART)),
        )
    )
    [opened] = sink.alerts
    assert attribute(opened, names.KEY) == CART and opened.severity_text == "warning"


async def test_without_details_the_incident_is_its_own_key():
    alerts, sink, _ = connector()
    await alerts.consume(spans(("checkout", "GET /cart", 0, marks("i7", opens=True, flagged=True, score=0.8))))
    [opened] = sink.alerts
    assert attribute(opened, names.KEY) == "i7"
    assert opened.body.string_value == "anomaly in i7: score 0.80; just opened"


async def test_predictions_alert_only_for_keys_without_an_open_incident():
    device = {"device.id": "d1"}
    telemetry = Telemetry()
    alerts, sink, _ = connector(telemetry)
    creeping = dict(key="device.id=d1", target="attributes.temperature", actual=74.0, limit=80.0, crossing=720.0)
    await alerts.consume(
        logs(
            (device, 0, marks("i1", opens=True, flagged=True, score=0.9, key="device.id=d1")),
            (device, 1, marks("i1", predicted=True, **creeping)),
        )
    )
    assert [attribute(a, names.ALERT_NAME) for a in sink.alerts] == ["AnomalyIncident"]

    other = {"device.id": "d2"}
    creeping["key"] = "device.id=d2"
    await alerts.consume(logs(*[(other, t, marks(predicted=True, **creeping)) for t in range(10)]))
    predicted = sink.alerts[1]
    assert len(sink.alerts) == 2, "one alert for a prediction however many records repeat it"
    assert predicted.severity_text == "warning" and attribute(predicted, names.ALERT_NAME) == "PredictedIncident"
    assert predicted.body.string_value == (
        "predicted in device.id=d2: attributes.temperature reaches 80 in about 12 min (now 74); score 0.10; just opened"
    )

    await alerts.consume(logs((other, 20, marks("i2", opens=True, flagged=True, score=0.95, key="device.id=d2"))))
    came_true, opened = sink.alerts[2:]
    assert (attribute(came_true, names.ALERT_NAME), attribute(came_true, names.ALERT_STATUS)) == ("PredictedIncident", "resolved")
    assert came_true.body.string_value.startswith("came true: predicted in device.id=d2: ")
    assert (attribute(opened, names.ALERT_NAME), attribute(opened, names.ALERT_STATUS)) == ("AnomalyIncident", "firing")
    assert (
        telemetry.value("otelml_anomaly_alerts_total", connector="anomaly_alerts", kind="predicted_incident", event="open") == 1
    )


async def test_a_prediction_from_the_score_trend_alone_is_info():
    alerts, sink, _ = connector()
    await alerts.consume(spans(("checkout", "GET /cart", 0, marks(predicted=True, score=0.45, forecast=0.72, key=CART))))
    [predicted] = sink.alerts
    assert predicted.severity_text == "info"
    assert predicted.body.string_value == f"predicted in {CART}: score trend rising to 0.72; score 0.45; just opened"


async def test_a_prediction_too_close_to_its_crossing_makes_no_alert():
    alerts, sink, _ = connector(min_lead="30s")
    await alerts.consume(
        spans(
            ("checkout", "GET /cart", 0, marks(predicted=True, score=0.5, crossing=3.0, key=CART)),
            ("checkout", "GET /", 0, marks(predicted=True, score=0.5, crossing=45.0, key="GET /")),
        )
    )
    assert [attribute(a, names.KEY) for a in sink.alerts] == ["GET /"]
    assert sink.alerts[0].body.string_value.startswith("predicted in GET /: score reaches the threshold in about 45 s")


async def test_connectors_that_leave_out_anomalies_or_predictions():
    incidents_only, incidents_sink, _ = connector(predicted_incidents=False)
    predictions_only, predictions_sink, _ = connector(anomalies=False)
    batch = spans(
        ("checkout", "GET /cart", 0, marks("i1", opens=True, flagged=True, key=CART)),
        ("checkout", "GET /cart", 1, marks("i1", flagged=True, predicted=True, key=CART)),
        ("checkout", "GET /", 2, marks(predicted=True, key="service.name=checkout span.name=GET /")),
    )
    await incidents_only.consume(batch)
    await predictions_only.consume(batch)
    assert [attribute(a, names.KEY) for a in incidents_sink.alerts] == [CART]
    assert [attribute(a, names.KEY) for a in predictions_sink.alerts] == ["service.name=checkout span.name=GET /"]


async def test_alerts_the_pipeline_refuses_wait_and_are_sent_later():
    telemetry = Telemetry()
    alerts, sink, _ = connector(telemetry)
    sink.refuse = RetryableError("sending queue is full")
    await alerts.consume(incident_spans(0, 2))
    assert sink.alerts == []
    sink.refuse = None
    await alerts.expire()
    assert [attribute(a, names.ALERT_STATUS) for a in sink.alerts] == ["firing"]
    assert telemetry.value("otelml_dropped_items_total", component="anomaly_alerts", otel_signal="logs", reason="shutdown") == 0


async def test_alerts_still_refused_at_shutdown_are_counted_as_dropped():
    telemetry = Telemetry()
    alerts, sink, _ = connector(telemetry)
    sink.refuse = RetryableError("down")
    await alerts.consume(incident_spans(0, 2))
    await alerts.shutdown()
    assert telemetry.value("otelml_dropped_items_total", component="anomaly_alerts", otel_signal="logs", reason="shutdown") == 1


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"resolve_after": "0s"}, "resolve_after: must be positive"),
        ({"repeat_interval": "-1s"}, "repeat_interval: must not be negative (0 sends no updates)"),
        ({"min_lead": "-1s"}, "min_lead: must not be negative (0 alerts on every prediction)"),
        (
            {"anomalies": False, "predicted_incidents": False},
            "anomalies: with predicted_incidents also false, no alert would ever be sent",
        ),
        ({"group_by": ["service.name", "service.name"]}, "group_by: lists an attribute twice"),
    ],
)
def test_config_problems_are_named(settings, problem):
    assert nested_problems(AnomalyAlertsConfig.model_validate(settings)) == [problem]


@pytest.mark.integration  # the timer runs on the wall clock
async def test_in_a_running_service_the_timer_resolves_a_key_gone_silent(tmp_path):
    service = alerting_service("200ms", "file/alerts", {"path": str(tmp_path / "alerts.jsonl"), "flush_interval": "10ms"})
    await service.start()
    try:
        await scored_spans(service).consume(incident_spans(0, 3))
        await eventually(
            lambda: len(logs_of(read_batches(tmp_path / "alerts.jsonl", Signal.LOGS))) == 2,
            what="the alert and its resolution in the file",
        )
    finally:
        await service.shutdown()
    statuses = [attribute(a, names.ALERT_STATUS) for a in logs_of(read_batches(tmp_path / "alerts.jsonl", Signal.LOGS))]
    assert statuses == ["firing", "resolved"]
