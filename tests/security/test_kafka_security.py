"""Kafka TLS and SASL settings reach aiokafka and the wire (see fake_kafka for why not tansu)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.errors import RetryableError
from otelml.pdata import Signal
from otelml.registry import Registry
from otelml.synthetic import make_trace_request
from otelml.telemetry import Telemetry
from otelml.tlsconfig import ServerTLSConfig
from tests.security.clients import server_tls
from tests.security.fake_kafka import SaslRecordingBroker
from tests.test_otlp_e2e import wait_for

pytestmark = pytest.mark.integration

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Sink:
    mutates_data = False

    async def consume(self, batch) -> None:
        raise AssertionError("nothing can be received from the test broker")


def kafka_settings(pki, port: int, mechanism: str) -> dict:
    return {
        "brokers": [f"localhost:{port}"],
        "tls": {"ca_file": str(pki.ca.cert_file)},
        "auth": {"sasl": {"mechanism": mechanism, "username": "otelml-agent", "password": "kafka-pa55"}},
    }


def create(kind: Kind, settings: dict, *args):
    factory = Registry.default().get(kind, "kafka")
    config = factory.config_class.model_validate(settings)
    return factory.create(CreateSettings(ComponentID("kafka"), kind, Telemetry()), config, *args)


def assert_offered(broker: SaslRecordingBroker, mechanism: str) -> None:
    assert broker.mechanisms[0] == mechanism
    if mechanism == "PLAIN":
        # [authorization identity] NUL user NUL password (RFC 4616)
        assert broker.auth_tokens[0].split(b"\x00")[-2:] == [b"otelml-agent", b"kafka-pa55"]
    else:  # the SCRAM client-first message names the user; the password never travels
        assert broker.auth_tokens[0].startswith(b"n,,n=otelml-agent,r=")
        assert b"kafka-pa55" not in broker.auth_tokens[0]


@pytest.fixture
async def broker(pki):
    async with SaslRecordingBroker(ServerTLSConfig(**server_tls(pki)).ssl_context(logging.getLogger("test"))) as broker:
        yield broker


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_the_exporter_connects_with_tls_and_offers_sasl(mechanism, pki, broker):
    exporter = create(Kind.EXPORTER, {**kafka_settings(pki, broker.port, mechanism), "timeout": "2s"})
    await exporter.start(None)
    try:
        with pytest.raises(RetryableError, match="cannot reach the brokers"):
            await exporter.export(make_trace_request(spans=1))
    finally:
        await exporter.shutdown()
    assert_offered(broker, mechanism)


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_the_receiver_connects_with_tls_and_offers_sasl(mechanism, pki, broker):
    receiver = create(Kind.RECEIVER, kafka_settings(pki, broker.port, mechanism), {Signal.TRACES: Sink()})
    await receiver.start(None)
    try:
        assert await asyncio.to_thread(wait_for, lambda: broker.auth_tokens, 15)
    finally:
        await receiver.shutdown()
    assert_offered(broker, mechanism)


async def test_a_broker_the_ca_did_not_sign_is_never_sent_credentials(pki, tmp_path, broker):
    settings = kafka_settings(pki, broker.port, "PLAIN")
    settings["tls"]["ca_file"] = str(pki.stranger_cert)  # some other CA's certificate
    exporter = create(Kind.EXPORTER, {**settings, "timeout": "2s"})
    await exporter.start(None)
    try:
        with pytest.raises(RetryableError):
            await exporter.export(make_trace_request(spans=1))
    finally:
        await exporter.shutdown()
    assert broker.mechanisms == [] and broker.auth_tokens == []
