"""TLS settings shared by network components, named as the collector's configtls."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from otelml.configmodel import ComponentConfig


class ClientTLSConfig(ComponentConfig):
    """TLS of an outgoing connection. ``insecure: true`` means plain text (gRPC exporters)."""

    insecure: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    server_name_override: str | None = None

    def validate(self) -> list[str]:
        problems = []
        if bool(self.cert_file) != bool(self.key_file):
            problems.append("cert_file: cert_file and key_file must be set together")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                problems.append(f"{name}: cannot read {path}")
        return problems

    def grpc_credentials(self) -> grpc.ChannelCredentials | None:
        """Channel credentials, or None for a plain-text channel."""
        if self.insecure:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )

    def grpc_options(self) -> list[tuple[str, str]]:
        if self.server_name_override and not self.insecure:
            return [("grpc.ssl_target_name_override", self.server_name_override)]
        return []

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None
