"""Fixtures of the security tests: test certificates, TLS configs and clients."""

from __future__ import annotations

import pytest

from tests.security.certs import PKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def requests_trusts_what_it_is_told(monkeypatch):
    """requests lets these variables override the CA file a client passes (the SDK's HTTP exporter's
    ``certificate_file``), so where they are set the test CA would never be used."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gateway_env(monkeypatch, tmp_path):
    """The variables :func:`tests.security.clients.gateway_config` refers to, for configs parsed in-process."""
    for name in ("GRPC", "HTTP", "METRICS", "HEALTH"):
        monkeypatch.setenv(name, "127.0.0.1:0")
    monkeypatch.setenv("OUT", str(tmp_path))
