"""`otelml validate` finds in one pass everything start would refuse; a start that fails says why in one line."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import yaml

from otelml.cli import main
from otelml.configmodel import ComponentConfig, Duration, check
from tests.conftest import free_port


def validate(tmp_path, document: dict, capsys) -> tuple[int, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    code = main(["validate", "--config", str(path)])
    return code, [line.strip() for line in capsys.readouterr().err.splitlines()[1:]]


def traces_pipeline(processors: list[str] | None = None, exporters: list[str] | None = None) -> dict:
    return {"pipelines": {"traces": {"receivers": ["otlp"], "processors": processors or [], "exporters": exporters or ["debug"]}}}


OTLP = {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}}


def test_a_reference_the_pipeline_signal_lacks_is_found_by_validate(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "processors": {"anomaly/latency": {"key": ["resource.service.name", "log.severity_text"]}},
        "exporters": {"debug": {}},
        "service": traces_pipeline(["anomaly/latency"]),
    }
    assert validate(tmp_path, document, capsys) == (
        1,
        ['processors::anomaly/latency::key::1: "log.severity_text" does not exist in traces'],
    )


def test_a_connector_is_checked_against_the_signal_it_takes_in(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "exporters": {"debug": {}},
        "connectors": {"anomaly_metrics": {"dimensions": ["span.name"]}},
        "service": {
            "pipelines": {
                "logs": {"receivers": ["otlp"], "exporters": ["anomaly_metrics"]},
                "traces": {"receivers": ["otlp"], "exporters": ["anomaly_metrics"]},
                "metrics": {"receivers": ["anomaly_metrics"], "exporters": ["debug"]},
            }
        },
    }
    code, problems = validate(tmp_path, document, capsys)
    assert (code, problems) == (1, ['connectors::anomaly_metrics::dimensions::0: "span.name" does not exist in logs'])


def test_an_unset_variable_in_an_endpoint_is_a_pathed_error_that_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OTELML_TEST_GRPC_ENDPOINT", raising=False)
    document = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:OTELML_TEST_GRPC_ENDPOINT}"}}}},
        "exporters": {"debug": {}},
        "service": traces_pipeline(),
    }
    assert validate(tmp_path, document, capsys) == (
        1,
        [
            "receivers::otlp::protocols::grpc::endpoint: invalid endpoint '': expected host:port "
            "(${env:OTELML_TEST_GRPC_ENDPOINT} is not set and has no default)"
        ],
    )


def test_every_problem_comes_in_one_pass_without_follow_on_noise(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "processors": {"batch": {"timeout": "-5s", "bogus": 1}, "memory_limiter": {"check_interval": "1s", "limit_mib": "lots"}},
        "exporters": {
            "debug": {},
            "otlp": {"endpoint": "localhost:4317", "bogus": 2, "sending_queue": {"storage": "file_storage/missing"}},
        },
        "service": traces_pipeline(["memory_limiter", "batch"], ["otlp", "debug"]),
    }
    code, problems = validate(tmp_path, document, capsys)
    assert code == 1
    assert problems == [
        "processors::batch::bogus: unknown key",
        "processors::batch::timeout: must not be negative",
        "processors::memory_limiter::limit_mib: Input should be a valid integer, unable to parse string as an integer",
        "exporters::otlp::bogus: unknown key",
        'exporters::otlp::sending_queue::storage: references extension "file_storage/missing" which is not configured',
    ]
    # Components with problems are configured: no "references processor ... which is not configured", and the
    # limit left out is not reported again as missing ("set limit_mib or limit_percentage").


def test_an_unknown_component_type_is_reported_once(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "processors": {"nosuch": {}},
        "exporters": {"debug": {}},
        "service": traces_pipeline(["nosuch"]),
    }
    code, problems = validate(tmp_path, document, capsys)
    assert code == 1 and len(problems) == 1 and problems[0].startswith('processors::nosuch: unknown processor type "nosuch"')


def test_check_reports_pydantic_and_cross_field_problems_together():
    class Section(ComponentConfig):
        size: int = 1
        retries: list[int] = []
        timeout: Duration = 1.0
        period: Duration = 2.0

        def validate_config(self) -> list[str]:
            problems = ["timeout: must be shorter than period"] if self.timeout >= self.period else []
            return problems + (["size: must be even"] if self.size % 2 else [])

    checked = check(Section, {"size": "x", "retries": [1, "a", "b"], "timeout": "5s", "colour": "red"})
    assert checked.problems == [
        "size: Input should be a valid integer, unable to parse string as an integer",
        "retries::1: Input should be a valid integer, unable to parse string as an integer",
        "retries::2: Input should be a valid integer, unable to parse string as an integer",
        "colour: unknown key",
        "timeout: must be shorter than period",
    ]
    assert checked.config.retries == [1]
    assert check(Section, {"size": 2}).problems == []


def test_two_servers_on_one_port_are_found_by_validate(tmp_path, capsys):
    document = {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}, "http": {"endpoint": "localhost:4317"}}},
            "otlp/unused": {"protocols": {"http": {"endpoint": "127.0.0.1:13133"}}},
        },
        "exporters": {"debug": {}, "prometheus": {"endpoint": "0.0.0.0:8888"}},
        "extensions": {"health_check": {"endpoint": "127.0.0.1:13133"}, "zpages": {"endpoint": "127.0.0.1:0"}},
        "service": {
            "extensions": ["health_check", "zpages"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["debug"]},
                "metrics": {"receivers": ["otlp"], "exporters": ["prometheus"]},
            },
        },
    }
    assert validate(tmp_path, document, capsys) == (
        1,
        [
            "exporters::prometheus::endpoint: 0.0.0.0:8888 is taken by service::telemetry::metrics (localhost:8888): "
            "one port serves one server",
            "receivers::otlp::protocols::http::endpoint: localhost:4317 is taken by receivers::otlp::protocols::grpc::endpoint "
            "(127.0.0.1:4317): one port serves one server",
        ],
    )


def test_servers_apart_by_address_or_on_free_ports_are_valid(tmp_path, capsys):
    document = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"prometheus": {"endpoint": "127.0.0.2:8888"}},
        "extensions": {"health_check": {"endpoint": "[::1]:8888"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {"metrics": {"receivers": ["otlp"], "exporters": ["prometheus"]}},
            "telemetry": {"metrics": {"address": "127.0.0.1:8888"}},
        },
    }
    assert validate(tmp_path, document, capsys) == (0, [])


def test_a_health_check_endpoint_that_is_not_host_port_is_found_by_validate(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "exporters": {"debug": {}},
        "extensions": {"health_check": {"endpoint": "healthy"}},
        "service": {"extensions": ["health_check"], **traces_pipeline()},
    }
    assert validate(tmp_path, document, capsys) == (
        1,
        ["extensions::health_check::endpoint: invalid endpoint 'healthy': expected host:port"],
    )


@pytest.mark.parametrize("endpoint", ["http://:::", "collector", "collector:otlp", "https://collector:99999"])
def test_an_otlp_exporter_endpoint_without_a_port_is_found_by_validate(tmp_path, capsys, endpoint):
    document = {"receivers": OTLP, "exporters": {"otlp": {"endpoint": endpoint}}, "service": traces_pipeline(exporters=["otlp"])}
    assert validate(tmp_path, document, capsys) == (1, [f"exporters::otlp::endpoint: {endpoint!r} must be host:port"])


def test_an_otlp_exporter_endpoint_may_name_its_scheme(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "exporters": {"otlp": {"endpoint": "https://collector.example:4317/"}},
        "service": traces_pipeline(exporters=["otlp"]),
    }
    assert validate(tmp_path, document, capsys) == (0, [])


@pytest.mark.parametrize(
    "exporters, problems",
    [
        (
            {"kafka": {"logs": {"topic": "app logs"}}},
            [
                "exporters::kafka::logs::topic: 'app logs' is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, and not . or ..)"
            ],
        ),
        ({"otlphttp": {"endpoint": "http://"}}, ["exporters::otlphttp::endpoint: 'http://' names no host"]),
        (
            {"otlphttp": {"endpoint": "http://collector:4318", "logs_endpoint": "https://collector:otlp/v1/logs"}},
            ["exporters::otlphttp::logs_endpoint: 'https://collector:otlp/v1/logs' has no valid port"],
        ),
        ({"alertmanager": {"endpoint": "http://:9093"}}, ["exporters::alertmanager::endpoint: 'http://:9093' names no host"]),
    ],
)
def test_a_destination_no_client_could_send_to_is_found_by_validate(tmp_path, capsys, exporters, problems):
    document = {
        "receivers": OTLP,
        "exporters": exporters,
        "service": {"pipelines": {"logs": {"receivers": ["otlp"], "exporters": list(exporters)}}},
    }
    assert validate(tmp_path, document, capsys) == (1, problems)


def test_kafka_topics_a_broker_would_refuse_are_found_by_validate(tmp_path, capsys):
    document = {
        "receivers": {"kafka": {"logs": {"topics": ["otlp_logs", "", "a" * 250, ".."]}}},
        "exporters": {"debug": {}},
        "service": {"pipelines": {"logs": {"receivers": ["kafka"], "exporters": ["debug"]}}},
    }
    rule = "is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, and not . or ..)"
    assert validate(tmp_path, document, capsys) == (
        1,
        [
            "receivers::kafka::logs::topics::1: must not be empty",
            f"receivers::kafka::logs::topics::2: {'a' * 250!r} {rule}",
            f"receivers::kafka::logs::topics::3: '..' {rule}",
        ],
    )


def checkpoint(path) -> dict:
    return {"path": str(path), "key": "0123456789abcdef"}


def test_a_checkpoint_two_processors_would_write_is_found_by_validate(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "processors": {
            "drain": {"checkpoint": checkpoint(tmp_path / "state.ckpt")},
            "anomaly": {"state": {"checkpoint": checkpoint(tmp_path / "." / "state.ckpt")}},
        },
        "exporters": {"debug": {}},
        "service": {"pipelines": {"logs": {"receivers": ["otlp"], "processors": ["drain", "anomaly"], "exporters": ["debug"]}}},
    }
    assert validate(tmp_path, document, capsys) == (
        1,
        [
            f"processors::anomaly::state::checkpoint::path: {tmp_path / '.' / 'state.ckpt'} is already the checkpoint of "
            "processors::drain::checkpoint::path: give each its own"
        ],
    )


def test_a_processor_with_a_checkpoint_in_two_pipelines_is_found_by_validate(tmp_path, capsys):
    # One instance per pipeline: two writers of one file.
    document = {
        "receivers": OTLP,
        "processors": {"anomaly": {"state": {"checkpoint": checkpoint(tmp_path / "anomaly.ckpt")}}},
        "exporters": {"debug": {}},
        "service": {
            "pipelines": {
                signal: {"receivers": ["otlp"], "processors": ["anomaly"], "exporters": ["debug"]}
                for signal in ("logs", "metrics", "traces")
            }
        },
    }
    assert validate(tmp_path, document, capsys) == (
        1,
        [
            f"processors::anomaly::state::checkpoint::path: {tmp_path / 'anomaly.ckpt'} would be written by the anomaly "
            f"of pipeline logs and by the one of pipeline {signal}: give each pipeline a processor of its own"
            for signal in ("metrics", "traces")
        ],
    )


def test_a_checkpoint_path_that_is_a_directory_is_found_by_validate(tmp_path, capsys):
    document = {
        "receivers": OTLP,
        "processors": {"anomaly": {"state": {"checkpoint": checkpoint(tmp_path)}}},
        "exporters": {"debug": {}},
        "service": traces_pipeline(["anomaly"]),
    }
    assert validate(tmp_path, document, capsys) == (
        1,
        [f"processors::anomaly::state::checkpoint::path: {tmp_path} is a directory: name a file (in it or elsewhere)"],
    )


# --- start failures ------------------------------------------------------------------


def start_with_taken_port(tmp_path, which: str) -> tuple[subprocess.CompletedProcess, int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoints = {name: f"127.0.0.1:{port if name == which else free_port()}" for name in ("grpc", "http", "metrics")}
        document = {
            "receivers": {
                "otlp": {"protocols": {"grpc": {"endpoint": endpoints["grpc"]}, "http": {"endpoint": endpoints["http"]}}}
            },
            "exporters": {"debug": {}},
            "service": {**traces_pipeline(), "telemetry": {"metrics": {"address": endpoints["metrics"]}}},
        }
        path = tmp_path / f"{which}.yaml"
        path.write_text(yaml.safe_dump(document))
        return subprocess.run(
            [sys.executable, "-m", "otelml", "--config", str(path)], capture_output=True, text=True, timeout=60
        ), port


@pytest.mark.integration
@pytest.mark.parametrize("which, component", [("grpc", "receiver otlp"), ("http", "receiver otlp"), ("metrics", "service")])
def test_a_taken_port_gives_one_line_naming_the_component_and_address_and_exit_1(tmp_path, which, component):
    result, port = start_with_taken_port(tmp_path, which)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Exception" not in output
    errors = [line for line in output.splitlines() if " ERROR " in line or line[:1] in "EW" and ".cc:" in line]
    assert len(errors) == 1, output
    assert errors[0].endswith(
        f"{component}: cannot {'serve internal metrics' if which == 'metrics' else 'start'}: "
        f"cannot listen on 127.0.0.1:{port}: address already in use"
    )


# --- settings of the collector's components that otelml does not take ---------------


@pytest.mark.parametrize(
    "component, settings, expected",
    [
        (
            "receivers::kafka",
            {"protocol_version": "2.0.0"},
            "protocol_version: the client negotiates the protocol version with the brokers: remove it",
        ),
        (
            "receivers::kafka",
            {"topic": "spans"},
            "topic: the single-topic form is gone: list the topics per signal (traces::topics",
        ),
        ("receivers::kafka", {"encoding": "otlp_json"}, "encoding: set the encoding per signal (traces::encoding"),
        (
            "receivers::kafka",
            {"auth": {"tls": {"insecure": True}}},
            "auth::tls: configure TLS at the top level of the component (tls:)",
        ),
        ("receivers::kafka", {"max_partition_fetch_size": 1}, "max_partition_fetch_size: it is named default_fetch_size here"),
        ("exporters::file", {"path": "x", "rotation": {"max_days": 3}}, "rotation::max_days: files rotate by size only"),
        (
            "exporters::file",
            {"path": "x", "rotation": {"localtime": True}},
            "rotation::localtime: rotated files are named with the UTC time",
        ),
        ("receivers::otlp", {"protocols": {"http": {"cors": {}}}}, "protocols::http::cors: CORS is not supported"),
        (
            "processors::memory_limiter",
            {"check_interval": "1s", "limit_mib": 9, "ballast_size_mib": 3},
            "ballast_size_mib: no memory ballast",
        ),
    ],
)
def test_a_collector_setting_otelml_does_not_take_says_what_to_do_instead(tmp_path, capsys, component, settings, expected):
    kind, name = component.split("::")
    pipeline = {
        "receivers": [name if kind == "receivers" else "otlp"],
        "processors": [name] if kind == "processors" else [],
        "exporters": [name if kind == "exporters" else "debug"],
    }
    document = {
        "receivers": {**OTLP, **({name: settings} if kind == "receivers" else {})},
        "processors": {name: settings} if kind == "processors" else {},
        "exporters": {"debug": {}, **({name: settings} if kind == "exporters" else {})},
        "service": {"pipelines": {"traces": pipeline}},
    }
    code, problems = validate(tmp_path, document, capsys)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith(f"{component}::{expected}")


def test_unsupported_keys_are_inherited_and_other_unknown_keys_stay_unknown():
    class Client(ComponentConfig):
        unsupported_keys = {"protocol_version": "negotiated: remove it"}

    class Receiver(Client):
        group_id: str = "g"
        unsupported_keys = {"topic": "use topics"}

    assert check(Receiver, {"protocol_version": 1, "topic": "a", "colour": "red"}).problems == [
        "protocol_version: negotiated: remove it",
        "topic: use topics",
        "colour: unknown key",
    ]
