"""`otelml demo` runs from any directory: its default config is installed with otelml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otelml.cli import demo_config
from tests.conftest import REPO, free_port

ENDPOINTS = ("GRPC", "HTTP", "PROMETHEUS", "HEALTH", "ZPAGES", "METRICS")


def test_the_installed_demo_config_is_config_demo_yaml():
    assert Path(demo_config()).read_text() == (REPO / "config" / "demo.yaml").read_text()


@pytest.mark.integration
def test_demo_runs_outside_the_repository(tmp_path):
    env = {**os.environ, **{f"OTELML_{name}_ENDPOINT": f"127.0.0.1:{free_port()}" for name in ENDPOINTS}}
    result = subprocess.run(
        [sys.executable, "-m", "otelml", "demo", "--duration", "4", "--rate", "20"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cannot read" not in result.stderr
    assert "demo: " in result.stdout and "traces sent" in result.stdout
    # The config's relative output paths are the current directory's.
    assert (tmp_path / "out" / "telemetry.jsonl").stat().st_size > 0
