"""The Grafana dashboard's and the alert rules' PromQL all return data from a Prometheus scraping the demo config
while the telemetry generator feeds it; promtool accepts the rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, free_port
from tests.metrics.prometheus import Prometheus

pytestmark = pytest.mark.integration

DASHBOARD = REPO / "config" / "grafana" / "otelml-anomalies.json"
RULES = REPO / "config" / "prometheus" / "otelml-rules.yaml"
RULE_TESTS = REPO / "config" / "prometheus" / "otelml-rules.test.yaml"
# Alerts whose expression returns data only when something has gone wrong, which a run of the generator
# does not show: promtool's unit tests (RULE_TESTS) feed them the series that do.
WHEN_WRONG_ONLY = {"OtelmlKeySilent"}
# What Grafana puts in place of the dashboard's variables, for a run of under a minute.
VARIABLES = {"$__rate_interval": "30s", "$__range": "5m", "$service": ".*"}


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every Prometheus query of the dashboard, variables filled in."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == "prometheus":
                expression = target["expr"]
                for variable, value in VARIABLES.items():
                    expression = expression.replace(variable, value)
                found.append((panel["title"], expression))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    """(name, PromQL) of every rule but those in WHEN_WRONG_ONLY."""
    return [
        (rule.get("record") or rule["alert"], rule["expr"])
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if rule.get("alert") not in WHEN_WRONG_ONLY
    ]


def test_promtool_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_unit_tests_pass_in_promtool():
    # A key that stopped altogether raises OtelmlKeySilent; one that goes on, or was quiet anyway, does not.
    result = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_dashboard_and_rule_expression_returns_data_after_the_generator_ran(tmp_path, otelml_process):
    assert len(dashboard_expressions()) >= 15 and len(rule_expressions()) >= 5
    otelml = otelml_process((REPO / "config" / "demo.yaml").read_text())
    exporter = f"127.0.0.1:{free_port()}"
    otelml.env.update(
        {
            "OTELML_GRPC_ENDPOINT": otelml.grpc_endpoint,
            "OTELML_HTTP_ENDPOINT": otelml.http_url[len("http://") :],
            "OTELML_METRICS_ENDPOINT": f"127.0.0.1:{otelml.ports['METRICS']}",
            "OTELML_HEALTH_ENDPOINT": f"127.0.0.1:{otelml.ports['HEALTH']}",
            "OTELML_PROMETHEUS_ENDPOINT": exporter,
            "OTELML_ZPAGES_ENDPOINT": f"127.0.0.1:{free_port()}",
            "OTELML_OUTPUT": str(tmp_path / "telemetry.jsonl"),
            "OTELML_ALERTS_OUTPUT": str(tmp_path / "alerts.jsonl"),
        }
    )
    otelml.start()
    targets = {"otelml-telemetry": exporter, "otelml": f"127.0.0.1:{otelml.ports['METRICS']}"}
    with Prometheus(tmp_path, targets, honor_labels=("otelml-telemetry",), rule_files=(RULES,)) as prometheus:
        generator = subprocess.run(
            [
                sys.executable,
                "-m",
                "otelml",
                "generate",
                "--endpoint",
                otelml.grpc_endpoint,
                "--rate",
                "40",
                "--duration",
                "40",
                "--incident-every",
                "8",
                "--incident-length",
                "4",
                "--seed",
                "13",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert generator.returncode == 0, generator.stderr
        # A query may come back empty for a moment when a scrape was late on a busy machine: each gets a few seconds.
        empty = [
            (name, expression)
            for name, expression in dashboard_expressions() + rule_expressions()
            if not prometheus.wait_for(expression, timeout=15)
        ]
    assert empty == [], f"queries without data: {empty}"
