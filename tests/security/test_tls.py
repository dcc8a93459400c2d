"""OTLP over TLS and mutual TLS, with the OpenTelemetry SDK and with a second otelml as clients."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from otelml.confmap import ConfigError
from otelml.synthetic import make_trace_request
from otelml.tlsconfig import ServerTLSConfig
from tests.conftest import build_config, metric
from tests.security.certs import Authority
from tests.security.clients import (
    address,
    gateway_config,
    make_spans,
    received_span_names,
    sdk_export,
    send_traces,
    served_certificate,
    server_tls,
)
from tests.test_otlp_e2e import wait_for

pytestmark = pytest.mark.integration

PROTOCOLS = ["grpc", "http"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_exports_over_tls_and_plain_text_is_refused(protocol, pki, otelml_process):
    with otelml_process(gateway_config(server_tls(pki))) as otelml:
        where = address(otelml, protocol)
        assert sdk_export(protocol, where, make_spans(3), ca=pki.ca.cert_file) is SpanExportResult.SUCCESS
        # Without the CA the server cannot be verified; without TLS there is no talking to it.
        assert sdk_export(protocol, where, make_spans(2), ca=pki.stranger_cert) is SpanExportResult.FAILURE
        assert sdk_export(protocol, where, make_spans(2), plain=True) is SpanExportResult.FAILURE
        assert wait_for(lambda: len(received_span_names(otelml)) >= 3)
        samples = otelml.metrics()
    assert received_span_names(otelml) == ["op-0", "op-1", "op-2"]
    assert metric(samples, "otelcol_receiver_accepted_spans_total", transport=protocol) == 3


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mutual_tls_refuses_clients_without_a_trusted_certificate(protocol, pki, otelml_process):
    with otelml_process(gateway_config(server_tls(pki, mutual=True))) as otelml:
        where = address(otelml, protocol)
        trusted = sdk_export(protocol, where, make_spans(4), ca=pki.ca.cert_file, client=(pki.client_cert, pki.client_key))
        without_certificate = sdk_export(protocol, where, make_spans(2), ca=pki.ca.cert_file)
        stranger = sdk_export(protocol, where, make_spans(2), ca=pki.ca.cert_file, client=(pki.stranger_cert, pki.stranger_key))
        assert wait_for(lambda: len(received_span_names(otelml)) >= 4)
        samples = otelml.metrics()
    assert (trusted, without_certificate, stranger) == (
        SpanExportResult.SUCCESS,
        SpanExportResult.FAILURE,
        SpanExportResult.FAILURE,
    )
    assert received_span_names(otelml) == [f"op-{i}" for i in range(4)]
    assert metric(samples, "otelcol_receiver_accepted_spans_total") == 4


def test_otelml_forwards_to_otelml_over_mutual_tls_with_a_token(pki, otelml_process, tmp_path):
    token = {"bearertokenauth/gateway": {"token": "${env:GATEWAY_TOKEN}"}}
    gateway = otelml_process(
        gateway_config(server_tls(pki, mutual=True), auth="bearertokenauth/gateway", extensions=token),
        extra_env={"GATEWAY_TOKEN": "forwarding-token-1"},
    ).start()
    client_tls = {"ca_file": str(pki.ca.cert_file), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    agent_config = gateway_config(extensions=token)
    auth = {"authenticator": "bearertokenauth/gateway"}
    agent_config["exporters"] = {
        "otlp": {"endpoint": gateway.grpc_endpoint, "tls": client_tls, "auth": auth},
        "otlphttp": {"endpoint": f"https://localhost:{gateway.ports['HTTP']}", "tls": client_tls, "auth": auth},
    }
    for pipeline in agent_config["service"]["pipelines"].values():
        pipeline["exporters"] = ["otlp", "otlphttp"]
    request = make_trace_request(spans=30, services=3)
    with otelml_process(agent_config, extra_env={"GATEWAY_TOKEN": "forwarding-token-1"}) as agent:
        send_traces(agent, request)
        assert wait_for(lambda: metric(gateway.metrics(), "otelcol_receiver_accepted_spans_total") >= 60)
        agent_samples = agent.metrics()
    gateway_samples = gateway.metrics()
    gateway.stop()
    for protocol, exporter in (("grpc", "otlp"), ("http", "otlphttp")):
        assert metric(gateway_samples, "otelcol_receiver_accepted_spans_total", transport=protocol) == 30
        assert metric(agent_samples, "otelcol_exporter_sent_spans_total", exporter=exporter) == 30
    assert metric(gateway_samples, "otelml_receiver_failed_requests_total") == 0


def test_certificates_are_reloaded_when_their_files_change(otelml_process, tmp_path):
    ca = Authority.create(tmp_path / "rotating", "ca")
    cert_file, key_file = ca.issue("server", server=True)
    tls = {"cert_file": str(cert_file), "key_file": str(key_file), "reload_interval": "100ms"}
    with otelml_process(gateway_config(tls)) as otelml:
        addresses = [("127.0.0.1", otelml.ports[name]) for name in ("GRPC", "HTTP")]
        first = [served_certificate(a, ca.cert_file) for a in addresses]
        assert first[0] == first[1] == _der(cert_file)

        # Files are looked at when a client connects: connect until both servers have seen the bad file.
        cert_file.write_text("not a certificate")
        assert wait_for(
            lambda: (
                [served_certificate(a, ca.cert_file) for a in addresses] == first
                and otelml.log().count("cannot reload the TLS certificate") >= 2
            )
        )

        ca.issue("server", server=True)
        assert wait_for(lambda: all(served_certificate(a, ca.cert_file) == _der(cert_file) for a in addresses))
        assert _der(cert_file) != first[0]
        assert "reloaded the TLS certificate" in otelml.log()


def _der(cert_file) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_file.read_text())


async def test_min_version_refuses_older_clients(pki):
    tls = ServerTLSConfig(**server_tls(pki, min_version="1.3"))
    server = await asyncio.start_server(
        lambda reader, writer: writer.close(), "127.0.0.1", 0, ssl=tls.ssl_context(logging.getLogger("test"))
    )
    port = server.sockets[0].getsockname()[1]
    try:
        old_client = ssl.create_default_context(cafile=str(pki.ca.cert_file))
        old_client.maximum_version = ssl.TLSVersion.TLSv1_2
        # The server ends the handshake: an alert (SSLError) or a reset, depending on timing.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=old_client)
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl.create_default_context(cafile=str(pki.ca.cert_file)))
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_tls_settings_are_checked_with_their_paths(pki, tmp_path, gateway_env):
    mismatched = {"cert_file": str(pki.server_cert), "key_file": str(pki.client_key)}
    config = gateway_config(mismatched)
    config["receivers"]["otlp"]["protocols"]["grpc"]["tls"] = server_tls(pki, min_version="1.3", max_version="1.2")
    config["exporters"]["otlp"] = {
        "endpoint": "gateway:4317",
        "tls": {"insecure_skip_verify": True, "ca_file": str(tmp_path / "none.pem")},
    }
    config["service"]["pipelines"]["traces"]["exporters"] = ["otlp"]
    with pytest.raises(ConfigError) as error:
        build_config(config)
    problems = error.value.problems
    assert any(p.startswith("receivers::otlp::protocols::http::tls::cert_file: cannot use") for p in problems)
    assert "receivers::otlp::protocols::grpc::tls::max_version: 1.2 is below min_version 1.3" in problems
    assert "receivers::otlp::protocols::grpc::tls::min_version: gRPC servers cannot require TLS 1.3; use 1.2" in problems
    assert f"exporters::otlp::tls::ca_file: cannot read {tmp_path / 'none.pem'}" in problems
    assert any(p.startswith("exporters::otlp::tls::insecure_skip_verify: gRPC cannot skip") for p in problems)
