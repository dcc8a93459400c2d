"""Shared test helpers: free ports, otelml as a subprocess, reading its metrics and files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from otelml.config import parse
from otelml.confmap import expand
from otelml.pdata import Signal, from_json
from otelml.registry import Registry

REPO = Path(__file__).resolve().parent.parent


# Ports handed out in this run: the kernel may give a port it gave before once that socket closed, and two
# servers of one test were once given the same one.
_handed_out: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now, and not one this run handed out before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def build_config(document: dict):
    """A validated Config from a config map (as YAML would give it)."""
    return parse(expand(document), Registry.default())


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text -> {(sample name, frozenset(labels)): value}."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items() if sample == name and wanted <= sample_labels)


class Collect:
    """A next consumer that keeps every batch it is given."""

    mutates_data = False

    def __init__(self):
        self.batches = []

    async def consume(self, batch):
        self.batches.append(batch)


def read_batches(path: Path, signal: Signal) -> list:
    """Batches of one signal from a file exporter's JSON lines output (its complete lines: the last may be being written)."""
    key = {Signal.TRACES: '"resourceSpans"', Signal.LOGS: '"resourceLogs"', Signal.METRICS: '"resourceMetrics"'}[signal]
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [from_json(line, signal) for line in complete.splitlines() if line.startswith("{" + key)]


def spans_of(batches) -> list:
    return [span for b in batches for rs in b.resource_spans for ss in rs.scope_spans for span in ss.spans]


def logs_of(batches) -> list:
    return [r for b in batches for rl in b.resource_logs for sl in rl.scope_logs for r in sl.log_records]


class OtelmlProcess:
    """otelml started through its CLI as a subprocess, on free loopback ports.

    The config may use ``${env:GRPC}``, ``${env:HTTP}``, ``${env:METRICS}``,
    ``${env:HEALTH}`` (host:port endpoints chosen here) and ``${env:OUT}`` (a
    directory for output files).
    """

    def __init__(self, config: dict | str, workdir: Path, extra_env: dict | None = None):
        self.workdir = workdir
        self.ports = {name: free_port() for name in ("GRPC", "HTTP", "METRICS", "HEALTH")}
        self.env = {
            **os.environ,
            **{k: f"127.0.0.1:{p}" for k, p in self.ports.items()},
            "OUT": str(workdir),
            **(extra_env or {}),
        }
        self.config_path = workdir / f"config-{self.ports['GRPC']}.yaml"
        self.config_path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        self.log_path = workdir / f"otelml-{self.ports['GRPC']}.log"
        self.process: subprocess.Popen | None = None

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['GRPC']}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['HTTP']}"

    def start(self, timeout: float = 30.0) -> OtelmlProcess:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otelml", "--config", str(self.config_path)],
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"otelml exited with {self.process.returncode}:\n{self.log()}")
            if "everything is ready" in self.log():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"otelml did not become ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['METRICS']}/metrics", timeout=5) as response:
            return parse_metrics(response.read().decode())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process is None:
            return 0
        try:
            if self.process.poll() is not None:
                return self.process.returncode
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"otelml did not stop within {timeout}s:\n{self.log()}") from None
        finally:
            self._log.close()

    def __enter__(self) -> OtelmlProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def otelml_process(tmp_path):
    """Factory: ``with otelml_process(config) as p: ...``; always stopped afterwards."""
    started = []

    def make(config, extra_env=None) -> OtelmlProcess:
        process = OtelmlProcess(config, tmp_path, extra_env)
        started.append(process)
        return process

    yield make
    for process in started:
        process.__exit__(None, None, None)


def otlp_to_file_config(exporter_extra: dict | None = None) -> dict:
    """OTLP gRPC+HTTP in, batch, file out ($OUT/out.jsonl), metrics on $METRICS."""
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:GRPC}"}, "http": {"endpoint": "${env:HTTP}"}}}},
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"file": {"path": "${env:OUT}/out.jsonl", "flush_interval": "100ms", **(exporter_extra or {})}},
        "extensions": {"health_check": {"endpoint": "${env:HEALTH}"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                s: {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["file"]} for s in ("traces", "logs", "metrics")
            },
            "telemetry": {"metrics": {"address": "${env:METRICS}"}},
        },
    }
