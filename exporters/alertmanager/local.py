"""A Prometheus Alertmanager on this machine, run as a child process: for ``otelml demo`` and the tests.

It listens on a loopback port (by default one the system chooses, read back
from its log), keeps its state in a folder of its own and has clustering
off, so several can run side by side.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

from otelml.component import ComponentID, Kind
from otelml.config import Config
from otelml.exporters.alertmanager.config import AlertmanagerExporterConfig

BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, then upstream's
_LISTENING = re.compile(r'msg="Listening on" address=(\S+)')
# Every alert goes to a receiver that notifies no one: the alerts are read through the API.
QUIET_CONFIG = {"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}


def send_alerts_to(config: Config, url: str) -> list[str]:
    """Add an ``alertmanager/local`` exporter for ``url`` to every pipeline fed by an ``anomaly_alerts`` connector.

    Returns those pipelines' names (none when the config has no such pipeline).
    """
    exporter = ComponentID("alertmanager", "local")
    pipelines = [
        p
        for p in config.pipelines.values()
        if any(r.type == "anomaly_alerts" and r in config.components[Kind.CONNECTOR] for r in p.receivers)
    ]
    if pipelines:
        config.components[Kind.EXPORTER][exporter] = AlertmanagerExporterConfig(endpoint=url)
    for pipeline in pipelines:
        pipeline.exporters.append(exporter)
    return [str(p.id) for p in pipelines]


def find_binary() -> str | None:
    """The installed Alertmanager, or None."""
    for name in BINARIES:
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/usr/local/bin")
        if path:
            return path
    return None


class LocalAlertmanager:
    """Alertmanager with ``config`` (its YAML as a dict) in ``folder``, started by :meth:`start`.

    It listens on 127.0.0.1:``port``; 0 lets the system choose a free one.

    Examples
    --------
    >>> manager = LocalAlertmanager(Path("/tmp/am"))
    >>> manager.url is None   # not started
    True
    """

    def __init__(self, folder: Path, config: dict | None = None, port: int = 0):
        self.folder = folder
        self.config = config or QUIET_CONFIG
        self.port = port
        self.log_path = folder / "alertmanager.log"
        self.url: str | None = None
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> LocalAlertmanager:
        """Start it and wait until it answers; raises RuntimeError (with its log) when it cannot."""
        binary = find_binary()
        if binary is None:
            raise RuntimeError(f"Alertmanager is not installed (none of {', '.join(BINARIES)} on the PATH)")
        self.folder.mkdir(parents=True, exist_ok=True)
        config_path = self.folder / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config))
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Alertmanager exited with {self._process.returncode}:\n{self.log()}")
            found = _LISTENING.search(self.log())
            if found and self._ready(f"http://{found.group(1)}"):
                self.url = f"http://{found.group(1)}"
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Alertmanager was not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alerts(self) -> list[dict]:
        """The alerts it holds and has not seen end (``GET /api/v2/alerts``)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return json.load(response)

    @staticmethod
    def _ready(url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def __enter__(self) -> LocalAlertmanager:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
