"""The MQTT receiver over ssl:// to a mosquitto that demands TLS and a password."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import publish

from otelml.pdata import Signal
from tests.conftest import logs_of, read_batches
from tests.security.clients import gateway_config
from tests.security.mosquitto import TLSMosquitto
from tests.test_otlp_e2e import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "mqtt-pa55-7e1d"
SENSOR_PASSWORD = "sensor-pa55-42aa"
CLIENT_ID = "otelml-secure"


def mqtt_config(broker: TLSMosquitto, pki) -> dict:
    config = gateway_config()
    config["receivers"]["mqtt"] = {
        "broker": broker.url,
        "client_id": CLIENT_ID,
        "username": "otelml",
        "password": "${env:MQTT_PASSWORD}",
        "tls": {"ca_file": str(pki.ca.cert_file)},
        "reconnect_max_delay": "2s",
        "topics": [{"topic": "sensors/#", "encoding": "text"}],
    }
    config["service"]["pipelines"]["logs"]["receivers"] = ["mqtt"]
    return config


def test_mqtt_receiver_reads_over_tls_with_a_password(pki, tmp_path, otelml_process):
    with TLSMosquitto(tmp_path / "broker", pki, {"otelml": PASSWORD, "sensor": SENSOR_PASSWORD}) as broker:
        with otelml_process(mqtt_config(broker, pki), extra_env={"MQTT_PASSWORD": PASSWORD}) as otelml:
            assert wait_for(lambda: f"Received SUBSCRIBE from {CLIENT_ID}" in broker.log())
            readings = [{"topic": f"sensors/boiler-{i}/temperature", "payload": f"{20 + i}.5 C", "qos": 1} for i in range(3)]
            publish.multiple(
                readings,
                hostname="127.0.0.1",
                port=broker.port,
                client_id="sensor",
                protocol=mqtt.MQTTv5,
                auth={"username": "sensor", "password": SENSOR_PASSWORD},
                tls={"ca_certs": str(pki.ca.cert_file)},
            )
            out = otelml.workdir / "out.jsonl"
            assert wait_for(lambda: len(logs_of(read_batches(out, Signal.LOGS))) >= 3)
        bodies = sorted(r.body.string_value for r in logs_of(read_batches(out, Signal.LOGS)))
        assert bodies == ["20.5 C", "21.5 C", "22.5 C"]
        assert PASSWORD not in otelml.log()


def test_mqtt_receiver_with_a_wrong_password_is_refused(pki, tmp_path, otelml_process):
    with TLSMosquitto(tmp_path / "broker", pki, {"otelml": PASSWORD}) as broker:
        with otelml_process(mqtt_config(broker, pki), extra_env={"MQTT_PASSWORD": "not-the-password"}) as otelml:
            assert wait_for(lambda: "refused the connection" in otelml.log())
    assert f"Received SUBSCRIBE from {CLIENT_ID}" not in broker.log()
    assert "not-the-password" not in otelml.log()
