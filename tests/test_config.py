"""Config parsing and validation, as the collector reports it: every problem at once, with its path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from otelml.cli import load_config, main
from otelml.component import Kind
from otelml.confmap import ConfigError, apply_set, expand, load_files, merge
from otelml.graph import build
from otelml.registry import Registry
from otelml.telemetry import Telemetry
from tests.conftest import REPO, build_config

PIPELINE = {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]}


def minimal(**overrides) -> dict:
    document = {
        "receivers": {"otlp": {"protocols": {"grpc": None}}},
        "processors": {"batch": None},
        "exporters": {"debug": None},
        "service": {"pipelines": {"traces": dict(PIPELINE)}},
    }
    return merge(document, overrides)


def problems_of(document: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config(document)
    return caught.value.problems


def test_minimal_config_is_valid_and_fills_defaults():
    config = build_config(minimal())
    otlp = next(iter(config.components[Kind.RECEIVER].values()))
    assert otlp.protocols.grpc.endpoint == "localhost:4317"
    assert otlp.protocols.http is None
    batch = next(iter(config.components[Kind.PROCESSOR].values()))
    assert (batch.send_batch_size, batch.timeout) == (8192, 0.2)


def test_every_problem_is_reported_at_once_with_its_path():
    document = minimal(
        processors={"batch/2": {"timeout": "-1s"}, "batch/3": {"send_batch_size": 10, "send_batch_max_size": 5}},
        exporters={"debug": {"verbosity": "loud", "colour": True}},
        service={"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch/2"], "exporters": ["kafka"]}}},
    )
    problems = problems_of(document)
    assert "processors::batch/2::timeout: must not be negative" in problems
    assert "processors::batch/3::send_batch_max_size: must be greater than or equal to send_batch_size" in problems
    assert any(p.startswith("exporters::debug::verbosity: ") and "basic" in p for p in problems)
    assert "exporters::debug::colour: unknown key" in problems
    assert 'service::pipelines::traces: references exporter "kafka" which is not configured' in problems


def test_unknown_type_lists_the_known_ones():
    problems = problems_of(minimal(processors={"foo/x": {}}))
    assert any(p.startswith('processors::foo/x: unknown processor type "foo" (known: ') and "batch" in p for p in problems)


def test_invalid_ids_signals_and_missing_parts():
    document = minimal(
        receivers={"9bad": {}},
        service={
            "pipelines": {
                "spans": dict(PIPELINE),
                "logs/empty": {"receivers": [], "exporters": []},
            }
        },
    )
    problems = problems_of(document)
    assert any(p.startswith("receivers::9bad: invalid component type") for p in problems)
    assert 'service::pipelines::spans: unknown signal "spans" (known: traces, logs, metrics)' in problems
    assert "service::pipelines::logs/empty: must have at least one receiver" in problems
    assert "service::pipelines::logs/empty: must have at least one exporter" in problems


def test_named_pipelines_share_receivers_and_exporters():
    document = minimal(
        exporters={"debug/2": None},
        service={
            "pipelines": {
                "traces/alerts": {"receivers": ["otlp"], "exporters": ["debug", "debug/2"]},
                "logs": {"receivers": ["otlp"], "exporters": ["debug"]},
            }
        },
    )
    config = build_config(document)
    assert [str(p) for p in config.pipelines] == ["traces", "traces/alerts", "logs"]
    graph = build(config, Registry.default(), Telemetry())
    assert list(graph.receivers) == [next(iter(config.components[Kind.RECEIVER]))]
    assert sorted(str(e) for e in graph.exporters) == ["debug", "debug/2"]


def test_unused_components_are_not_created():
    document = minimal(exporters={"file": {"path": "/nonexistent/never-opened.jsonl"}}, processors={"batch/unused": None})
    config = build_config(document)
    graph = build(config, Registry.default(), Telemetry())
    assert [str(i) for i in graph.exporters] == ["debug"]
    assert [str(type(p).__name__) for p in graph.processors[next(iter(config.pipelines))]] == ["BatchProcessor"]


def test_connector_must_join_two_pipelines_and_may_not_loop():
    document = minimal(
        connectors={"forward": None},
        service={
            "pipelines": {
                "traces/a": {"receivers": ["otlp"], "exporters": ["forward"]},
                "traces/b": {"receivers": ["forward"], "exporters": ["forward"]},
            }
        },
    )
    problems = problems_of(document)
    assert any("connectors form a cycle" in p for p in problems)


def test_env_substitution_typed_defaults_and_escape(monkeypatch):
    monkeypatch.setenv("BATCH_SIZE", "100")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    expanded = expand(
        {
            "size": "${env:BATCH_SIZE}",
            "endpoint": "127.0.0.1:${env:UNSET_VAR:-4317}",
            "missing": "x${env:UNSET_VAR}y",
            "price": "$$5 and $${env:BATCH_SIZE}",
        }
    )
    assert expanded == {"size": 100, "endpoint": "127.0.0.1:4317", "missing": "xy", "price": "$5 and ${env:BATCH_SIZE}"}


def test_file_references_and_unknown_schemes(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    assert expand({"token": f"${{file:{secret}}}"}) == {"token": "s3cr3t"}
    with pytest.raises(ConfigError) as caught:
        expand({"a": {"b": "${vault:x}"}})
    assert caught.value.problems == ["a::b: unknown reference scheme 'vault' (known: env, file)"]


def test_two_files_merge_maps_and_replace_lists(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump(minimal(processors={"batch": {"timeout": "1s", "send_batch_size": 10}})))
    second.write_text(
        yaml.safe_dump({"processors": {"batch": {"timeout": "2s"}}, "service": {"pipelines": {"traces": {"processors": []}}}})
    )
    raw = load_files([first, second])
    assert raw["processors"]["batch"] == {"timeout": "2s", "send_batch_size": 10}
    assert raw["service"]["pipelines"]["traces"] == {"receivers": ["otlp"], "processors": [], "exporters": ["debug"]}


def test_set_overrides_with_dots_or_double_colons(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    config, raw = load_config(
        [str(path)], ["processors.batch.timeout=3s", "exporters::debug::verbosity=detailed"], Registry.default()
    )
    assert raw["processors"]["batch"]["timeout"] == "3s"
    assert next(iter(config.components[Kind.EXPORTER].values())).verbosity == "detailed"
    with pytest.raises(ConfigError):
        apply_set({}, "no-equals-sign")


def test_validate_command_prints_every_error_and_exits_1(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(minimal(processors={"batch": {"timeout": "soon"}}, exporters={"debug": {"x": 1}})))
    assert main(["validate", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "processors::batch::timeout: invalid duration 'soon'" in err
    assert "exporters::debug::x: unknown key" in err


def test_validate_command_accepts_a_good_config(tmp_path, capsys):
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    assert main(["validate", "--config", str(path)]) == 0
    assert "configuration is valid" in capsys.readouterr().out


def test_print_config_redacts_secrets(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            minimal(
                exporters={"otlp": {"endpoint": "gateway:4317", "headers": {"authorization": "Bearer abc123"}}},
                service={"pipelines": {"traces": {"exporters": ["otlp"]}}},
            )
        )
    )
    assert main(["print-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "abc123" not in out
    assert "authorization: '**********'" in out


def test_components_command_lists_signals(capsys):
    assert main(["components"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["receiver", "otlp"] and "traces" in line for line in lines)


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_validates(path: Path):
    config, _ = load_config([str(path)], [], Registry.default())
    assert config.pipelines


def test_missing_file_and_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers: [unclosed")
    with pytest.raises(ConfigError) as caught:
        load_files([tmp_path / "absent.yaml", bad])
    assert len(caught.value.problems) == 2
    assert os.fspath(tmp_path / "absent.yaml") in caught.value.problems[0]


def test_a_connector_may_not_share_an_id_with_a_receiver():
    from otelml.config import parse
    from otelml.pdata import Signal
    from otelml.receivers.otlp.config import OTLPReceiverConfig
    from otelml.registry import Factory

    registry = Registry.default()
    # A third-party receiver whose type is also a connector type.
    registry.add(Factory("forward", Kind.RECEIVER, OTLPReceiverConfig, create=lambda *a: None, signals=frozenset(Signal)))
    document = minimal(
        receivers={"forward": {"protocols": {"grpc": None}}},
        connectors={"forward": None},
        service={
            "pipelines": {
                "traces/a": {"receivers": ["otlp"], "exporters": ["forward"]},
                "traces/b": {"receivers": ["forward"], "exporters": ["debug"]},
            }
        },
    )
    with pytest.raises(ConfigError) as caught:
        parse(expand(document), registry)
    assert 'connectors::forward: ambiguous ID: receiver "forward" has the same ID; rename one of them' in caught.value.problems


def test_broker_passwords_are_secrets(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "receivers": {
                    "mqtt": {
                        "broker": "tcp://localhost:1883",
                        "username": "device",
                        "password": "mqtt-pass-123",
                        "topics": [{"topic": "sensors/#"}],
                    },
                    "kafka": {"auth": {"sasl": {"username": "otelml", "password": "kafka-pass-456"}}},
                },
                "exporters": {"debug": None},
                "service": {"pipelines": {"logs": {"receivers": ["mqtt", "kafka"], "exporters": ["debug"]}}},
            }
        )
    )
    assert main(["print-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mqtt-pass-123" not in out and "kafka-pass-456" not in out
