"""A real Prometheus (Debian's package) on a free loopback port, with a config written here, and its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import free_port


class Prometheus:
    """``prometheus`` scraping ``targets`` ({job: host:port}) every second, with exemplar storage.

    Jobs named in ``honor_labels`` keep the ``job``/``instance`` labels the
    target serves (as for the prometheus exporter). ``rule_files`` are loaded
    and evaluated every second. Starting fails, never skips, when Prometheus
    is not installed or does not become ready.
    """

    def __init__(
        self, workdir: Path, targets: dict[str, str], honor_labels: tuple[str, ...] = (), rule_files: tuple[Path, ...] = ()
    ):
        self.workdir = workdir / "prometheus"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "honor_labels": job in honor_labels, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.workdir / "prometheus.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Prometheus:
        binary = shutil.which("prometheus")
        assert binary, "Debian's prometheus is not installed (scripts/test.sh installs it)"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited with {self.process.returncode}:\n{self.log()}"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus did not become ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **parameters) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(parameters)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            document = json.load(response)
        assert document["status"] == "success", document
        return document["data"]

    def query(self, expression: str) -> list:
        """The result of an instant query (a list of series, or a scalar's ``[time, value]``)."""
        return self.api("query", query=expression)["result"]

    def exemplars(self, expression: str, since: float) -> list:
        return self.api("query_exemplars", query=expression, start=since, end=time.time() + 1)

    def wait_for(self, expression: str, timeout: float = 30.0) -> list:
        """The first non-empty result of ``expression`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expression)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
