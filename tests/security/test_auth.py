"""Bearer tokens: accepted and refused over gRPC and HTTP, sent by exporters, rotated through a file."""

from __future__ import annotations

import os

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.confmap import ConfigError
from otelml.extensions.bearertokenauth.config import BearerTokenAuthConfig
from otelml.extensions.bearertokenauth.extension import BearerTokenAuth
from otelml.synthetic import make_trace_request
from otelml.telemetry import Telemetry
from tests.conftest import build_config, metric
from tests.security.clients import address, gateway_config, make_spans, received_span_names, sdk_export, send_traces
from tests.test_otlp_e2e import wait_for

pytestmark = pytest.mark.integration

TOKEN = "s3cret-ingest-token"
WRONG = "s3cret-ingest-tokem"
AUTHENTICATOR = {"bearertokenauth/ingest": {"token": "${env:INGEST_TOKEN}"}}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_tokens_are_accepted_and_refused(protocol, otelml_process):
    config = gateway_config(auth="bearertokenauth/ingest", extensions=AUTHENTICATOR)
    with otelml_process(config, extra_env={"INGEST_TOKEN": TOKEN}) as otelml:
        where = address(otelml, protocol)

        def export(count: int, **headers) -> SpanExportResult:
            return sdk_export(protocol, where, make_spans(count), plain=True, headers=headers or None)

        assert export(5, authorization=f"Bearer {TOKEN}") is SpanExportResult.SUCCESS
        refused = [
            export(1),
            export(1, authorization=f"Bearer {WRONG}"),
            export(1, authorization=f"Basic {TOKEN}"),
            export(1, authorization=TOKEN),
            export(1, authorization=f"Bearer {TOKEN}x"),
        ]
        assert refused == [SpanExportResult.FAILURE] * 5
        assert wait_for(lambda: len(received_span_names(otelml)) >= 5)
        samples = otelml.metrics()
        log = otelml.log()
    assert received_span_names(otelml) == [f"op-{i}" for i in range(5)]
    assert metric(samples, "otelcol_receiver_accepted_spans_total") == 5
    assert metric(samples, "otelml_receiver_failed_requests_total", transport=protocol, reason="unauthenticated") == 5
    refusals = [line for line in log.splitlines() if "(unauthenticated)" in line]
    assert len(refusals) == 5
    assert all("receiver otlp:" in line and "127.0.0.1" in line for line in refusals)
    assert TOKEN not in log and WRONG not in log


def test_an_exporter_with_the_wrong_token_is_refused_for_good(otelml_process):
    gateway = otelml_process(
        gateway_config(auth="bearertokenauth/ingest", extensions=AUTHENTICATOR), extra_env={"INGEST_TOKEN": TOKEN}
    ).start()
    agent_config = gateway_config(extensions=AUTHENTICATOR)
    agent_config["exporters"] = {
        "otlp": {
            "endpoint": gateway.grpc_endpoint,
            "tls": {"insecure": True},
            "auth": {"authenticator": "bearertokenauth/ingest"},
        }
    }
    for pipeline in agent_config["service"]["pipelines"].values():
        pipeline["exporters"] = ["otlp"]
    with otelml_process(agent_config, extra_env={"INGEST_TOKEN": WRONG}) as agent:
        send_traces(agent, make_trace_request(spans=10))
        assert wait_for(lambda: metric(agent.metrics(), "otelcol_exporter_send_failed_spans_total", exporter="otlp") == 10)
        agent_samples = agent.metrics()
    gateway_samples = gateway.metrics()
    gateway.stop()
    # UNAUTHENTICATED is permanent: dropped at once, not retried.
    assert metric(agent_samples, "otelml_dropped_items_total", component="otlp", reason="permanent_error") == 10
    assert metric(gateway_samples, "otelml_receiver_failed_requests_total", reason="unauthenticated") == 1
    assert metric(gateway_samples, "otelcol_receiver_accepted_spans_total") == 0


async def test_a_token_file_is_read_again_when_it_changes(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    config = BearerTokenAuthConfig(filename=str(token_file))
    auth = BearerTokenAuth(CreateSettings(ComponentID("bearertokenauth"), Kind.EXTENSION, Telemetry()), config)
    await auth.start(None)
    assert auth.headers() == {"authorization": "Bearer first-token"}
    assert auth.authenticate({"authorization": "Bearer first-token"})

    replacement = tmp_path / "token.new"
    replacement.write_text("second-token")
    replacement.replace(token_file)
    assert not auth.authenticate({"authorization": "Bearer first-token"})
    assert auth.authenticate({"authorization": "Bearer second-token"})

    os.unlink(token_file)  # a missing file keeps the last token
    assert auth.authenticate({"authorization": "Bearer second-token"})
    token_file.write_text("")  # an empty one refuses everything
    assert not auth.authenticate({"authorization": "Bearer "})
    assert not auth.authenticate({})


def test_custom_header_and_scheme():
    config = BearerTokenAuthConfig(token="abc", header="X-API-Key", scheme="")
    auth = BearerTokenAuth(CreateSettings(ComponentID("bearertokenauth"), Kind.EXTENSION, Telemetry()), config)
    assert auth.headers() == {"x-api-key": "abc"}
    assert auth.authenticate({"x-api-key": "abc"})
    assert not auth.authenticate({"authorization": "abc"})


def test_an_authenticator_must_be_configured_and_enabled(gateway_env):
    config = gateway_config(auth="bearertokenauth/missing", extensions={"bearertokenauth/idle": {"token": "t"}})
    config["service"]["extensions"].remove("bearertokenauth/idle")
    config["exporters"]["otlp"] = {"endpoint": "gateway:4317", "auth": {"authenticator": "bearertokenauth/idle"}}
    config["service"]["pipelines"]["logs"]["exporters"] = ["otlp"]
    with pytest.raises(ConfigError) as error:
        build_config(config)
    problems = error.value.problems
    for protocol in ("grpc", "http"):
        assert (
            f"receivers::otlp::protocols::{protocol}::auth::authenticator: references extension "
            f'"bearertokenauth/missing" which is not configured'
        ) in problems
    assert (
        'exporters::otlp::auth::authenticator: references extension "bearertokenauth/idle" '
        "which is not enabled in service::extensions"
    ) in problems


def test_token_settings_are_checked(tmp_path, gateway_env):
    with pytest.raises(ConfigError) as error:
        build_config(
            gateway_config(
                extensions={
                    "bearertokenauth/both": {"token": "t", "filename": str(tmp_path / "t")},
                    "bearertokenauth/none": {},
                    "bearertokenauth/empty": {"token": " "},
                }
            )
        )
    problems = error.value.problems
    assert "extensions::bearertokenauth/both::token: set exactly one of token and filename" in problems
    assert f"extensions::bearertokenauth/both::filename: cannot read {tmp_path / 't'}" in problems
    assert "extensions::bearertokenauth/none::token: set exactly one of token and filename" in problems
    assert "extensions::bearertokenauth/empty::token: must not be empty" in problems
