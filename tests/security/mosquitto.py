"""A mosquitto broker with only a TLS listener and a password file, on a free loopback port.

A broker that does not start fails the test; it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.security.certs import PKI


class TLSMosquitto:
    def __init__(self, folder: Path, pki: PKI, users: dict[str, str]):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = folder / "mosquitto.log"
        passwords = folder / "passwords"
        for index, (user, password) in enumerate(users.items()):
            # -c creates the file; -b takes the password from the command line.
            subprocess.run(
                [_binary("mosquitto_passwd"), *(["-c"] if index == 0 else []), "-b", str(passwords), user, password],
                check=True,
                capture_output=True,
            )
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwords}",
            f"listener {self.port} 127.0.0.1",
            f"cafile {pki.ca.cert_file}",
            f"certfile {pki.server_cert}",
            f"keyfile {pki.server_key}",
            "tls_version tlsv1.2",
            "log_type all",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to the mosquitto user, which cannot read the owner-only keys.
            lines.append("user root")
        self.config_path = folder / "mosquitto.conf"
        self.config_path.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ssl://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> TLSMosquitto:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [_binary("mosquitto"), "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        pytest.fail(f"mosquitto did not listen on port {self.port}:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is missing: install the Debian package mosquitto")
    return path
