"""The collectors under test, each started as its own process on free loopback ports.

CPU time and peak memory are read from ``/proc`` of the collector process
itself, so the load generator's own work never counts.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rotel
import yaml

from tests.conftest import free_port

ROTEL_AGENT = Path(rotel.__file__).parent / "rotel-agent"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@dataclasses.dataclass
class Running:
    process: subprocess.Popen
    grpc_port: int
    workdir: Path

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss(self) -> float:
        return peak_rss_mib(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclasses.dataclass
class System:
    """A named way to start a collector: ``sink_port`` None means export to a blackhole or file."""

    name: str
    kind: str  # "otelml" or "rotel"
    processors: list[dict] = dataclasses.field(default_factory=list)  # otelml: [{id: config}] in order
    rotel_processor: Path | None = None
    kafka_brokers: str | None = None
    batch_timeout: str = "200ms"

    def start(self, sink_port: int | None) -> Running:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        port = free_port()
        if self.kind == "rotel":
            process = self._start_rotel(port, sink_port, workdir)
        else:
            process = self._start_otelml(port, sink_port, workdir)
        wait_for_port(port, process)
        return Running(process, port, workdir)

    def _start_rotel(self, port: int, sink_port: int | None, workdir: Path) -> subprocess.Popen:
        args = [
            str(ROTEL_AGENT),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{free_port()}",
            "--batch-timeout",
            self.batch_timeout,
        ]
        if sink_port is None:
            args += ["--exporter", "blackhole"]
        else:
            args += [
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                f"http://127.0.0.1:{sink_port}",
                "--otlp-exporter-compression",
                "none",
            ]
        if self.rotel_processor is not None:
            args += ["--otlp-with-trace-processor", str(self.rotel_processor)]
        # Its embedded interpreter finds river and numpy through the virtualenv first on PATH.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        return subprocess.Popen(args, env=env, cwd=workdir, stdout=open(workdir / "log", "wb"), stderr=subprocess.STDOUT)

    def _start_otelml(self, port: int, sink_port: int | None, workdir: Path) -> subprocess.Popen:
        # The batch processor goes last unless the system places it itself.
        order = [pid for entry in self.processors for pid in entry]
        if "batch" not in order:
            order.append("batch")
        processors = {pid: cfg for entry in self.processors for pid, cfg in entry.items()}
        processors["batch"] = {"timeout": self.batch_timeout, "send_batch_size": 8192}
        if sink_port is not None:
            exporters = {"otlp": {"endpoint": f"127.0.0.1:{sink_port}", "tls": {"insecure": True}, "compression": "none"}}
        elif self.kafka_brokers:
            exporters = {"kafka": {"brokers": [self.kafka_brokers], "traces": {"topic": "otlp_spans"}}}
        else:
            exporters = {"file": {"path": str(workdir / "out.pb"), "format": "proto"}}
        config = {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}", "max_recv_msg_size_mib": 64}}}},
            "processors": processors,
            "exporters": exporters,
            "service": {
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": order, "exporters": list(exporters)}},
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
        }
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return subprocess.Popen(
            [sys.executable, "-m", "otelml", "--config", str(path)],
            cwd=workdir,
            stdout=open(workdir / "log", "wb"),
            stderr=subprocess.STDOUT,
        )
