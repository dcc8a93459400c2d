"""mqtt receiver settings and topic templates, without a broker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from otelml.configmodel import nested_problems
from otelml.receivers.mqtt.config import MQTTReceiverConfig
from otelml.receivers.mqtt.topics import TopicTemplate, filter_problem


def test_problems_name_their_fields():
    config = MQTTReceiverConfig.model_validate(
        {
            "broker": "http://broker:80",
            "clean_start": False,
            "client_id": "",
            "keepalive": "100ms",
            "topics": [
                {
                    "topic": "a/b#",
                    "signal": "traces",
                    "encoding": "json",
                    "resource_from_topic": "a/{x}{y}",
                    "timestamp_field": "ts",
                },
                {"topic": "ok/+", "encoding": "text", "timestamp_field": "ts"},
            ],
        }
    )
    assert nested_problems(config) == [
        "broker: 'http://broker:80' must be tcp://host:port or ssl://host:port",
        "client_id: a kept session (clean_start: false) needs a fixed client_id",
        "keepalive: must be at least 1s",
        "topics::0::topic: '#' must be the last level",
        "topics::0::encoding: encoding 'json' cannot carry traces (use one of: otlp_json, otlp_proto)",
        "topics::0::resource_from_topic: level '{x}{y}': a {name} must be a whole level",
        "topics::1::timestamp_field: only the json encoding has fields",
    ]


def test_defaults_and_addresses():
    config = MQTTReceiverConfig.model_validate(
        {"broker": "ssl://mqtt.local", "protocol_version": "3.1.1", "topics": [{"topic": "#"}]}
    )
    assert config.address() == ("mqtt.local", 8883, True)
    assert MQTTReceiverConfig.model_validate({"protocol_version": 5, "topics": [{"topic": "#"}]}).protocol_version == "5"
    with pytest.raises(ValidationError, match="protocol_version"):
        MQTTReceiverConfig.model_validate({"protocol_version": 3.1, "topics": [{"topic": "#"}]})


@pytest.mark.parametrize(
    "template, topic, attributes",
    [
        ("sensors/{device.id}/{sensor.type}", "sensors/d1/temp", {"device.id": "d1", "sensor.type": "temp"}),
        ("sensors/{device.id}/{sensor.type}", "sensors/d1/temp/extra", None),
        ("sensors/{device.id}/#", "sensors/d1/temp/extra", {"device.id": "d1"}),
        ("+/{site}/status", "plant/berlin/status", {"site": "berlin"}),
        ("+/{site}/status", "plant/berlin/health", None),
    ],
)
def test_templates(template, topic, attributes):
    assert TopicTemplate(template).attributes(topic) == attributes


@pytest.mark.parametrize("template", ["no/captures", "{a}/{a}", "x/#/{a}", "x/a+/{b}"])
def test_bad_templates(template):
    assert TopicTemplate.problem(template)
    with pytest.raises(ValueError):
        TopicTemplate(template)


@pytest.mark.parametrize(
    "topic_filter, valid", [("a/+/c", True), ("#", True), ("a/#", True), ("a/b+", False), ("", False), ("a/#/b", False)]
)
def test_filters(topic_filter, valid):
    assert (filter_problem(topic_filter) is None) is valid
