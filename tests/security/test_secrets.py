"""Secrets stay secret: not in print-config, validate errors or logs; output files are owner-only."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest
import yaml
from opentelemetry.sdk.trace.export import SpanExportResult

from otelml.cli import main
from otelml.component import ComponentID
from otelml.service import Service
from otelml.synthetic import make_trace_request
from tests.conftest import build_config, free_port
from tests.security.clients import address, gateway_config, make_spans, sdk_export

pytestmark = pytest.mark.integration

TOKEN = "tok-5f1c9a77e2d04b8b"
WRONG_TOKEN = "tok-5f1c9a77e2d04b8c"
HASH_KEY = "hk-0c4e2f9ab71d46e3a8"
HEADER_SECRET = "hdr-93be10c4d5a2"


def secret_config(tmp_path) -> dict:
    """A gateway whose token comes from ${env:...}, hash key from ${file:...}, and an exporter header secret."""
    (tmp_path / "hash.key").write_text(HASH_KEY + "\n")
    config = gateway_config(
        auth="bearertokenauth/ingest", extensions={"bearertokenauth/ingest": {"token": "${env:INGEST_TOKEN}"}}
    )
    config["processors"]["redaction"] = {
        "allow_all_keys": True,
        "hash_keys": ["client.address"],
        "hash_key": f"${{file:{tmp_path / 'hash.key'}}}",
    }
    # An exporter to a port nobody listens on, so that its failures are logged.
    config["exporters"]["otlp/unreachable"] = {
        "endpoint": f"127.0.0.1:{free_port()}",
        "tls": {"insecure": True},
        "headers": {"x-api-key": HEADER_SECRET},
        "retry_on_failure": {"initial_interval": "50ms", "max_elapsed_time": "1s"},
    }
    traces = config["service"]["pipelines"]["traces"]
    traces["processors"] = ["redaction", "batch"]
    traces["exporters"] = ["file", "otlp/unreachable"]
    config["service"]["telemetry"]["logs"] = {"level": "debug"}
    return config


def assert_no_secret(text: str) -> None:
    assert [s for s in (TOKEN, WRONG_TOKEN, HASH_KEY, HEADER_SECRET) if s in text] == []


def test_print_config_shows_no_secret(tmp_path, capsys, monkeypatch, gateway_env):
    monkeypatch.setenv("INGEST_TOKEN", TOKEN)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(secret_config(tmp_path)))
    assert main(["print-config", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    assert_no_secret(printed)
    document = yaml.safe_load(printed)
    assert document["extensions"]["bearertokenauth/ingest"]["token"] == "**********"
    assert document["processors"]["redaction"]["hash_key"] == "**********"
    assert document["exporters"]["otlp/unreachable"]["headers"] == {"x-api-key": "**********"}


def test_validate_errors_show_no_secret(tmp_path, capsys, gateway_env):
    config = gateway_config(extensions={"bearertokenauth/broken": {"token": TOKEN, "filename": str(tmp_path / "missing")}})
    config["processors"]["redaction"] = {"hash_key": HASH_KEY, "hash_function": "sha1"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", "--config", str(path)]) == 1
    errors = capsys.readouterr().err
    assert "extensions::bearertokenauth/broken::token: set exactly one of token and filename" in errors
    assert "processors::redaction::hash_function:" in errors
    assert_no_secret(errors)


def test_logs_show_no_secret(tmp_path, otelml_process):
    with otelml_process(secret_config(tmp_path), extra_env={"INGEST_TOKEN": TOKEN}) as otelml:
        for protocol in ("grpc", "http"):
            where = address(otelml, protocol)
            accepted = sdk_export(protocol, where, make_spans(2), plain=True, headers={"authorization": f"Bearer {TOKEN}"})
            refused = sdk_export(protocol, where, make_spans(2), plain=True, headers={"authorization": f"Bearer {WRONG_TOKEN}"})
            assert (accepted, refused) == (SpanExportResult.SUCCESS, SpanExportResult.FAILURE)
    log = otelml.log()
    assert "(unauthenticated)" in log and "exporter otlp/unreachable" in log
    assert_no_secret(log)


async def test_rotated_output_files_are_owner_only(tmp_path):
    config = build_config(
        {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
            "exporters": {
                "file": {"path": str(tmp_path / "out" / "spans.jsonl"), "rotation": {"max_megabytes": 1, "max_backups": 0}}
            },
            "service": {
                "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file"]}},
                "telemetry": {"metrics": {"level": "none"}},
            },
        }
    )
    service = Service(config)
    with _umask(0):  # even when the process would let everyone read what it creates
        await service.start()
        try:
            exporter = service.graph.exporters[ComponentID("file")]
            for seed in range(6):
                await exporter.consume(make_trace_request(spans=2000, seed=seed))
        finally:
            await service.shutdown()
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) >= 3  # rotated at least twice
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {oct(0o600)}


@contextlib.contextmanager
def _umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)
