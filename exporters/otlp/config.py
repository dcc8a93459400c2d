from typing import Literal

from pydantic import SecretStr

from otelml.configauth import AuthConfig
from otelml.configmodel import parse_endpoint
from otelml.exporterhelper import ExporterHelperConfig
from otelml.tlsconfig import ClientTLSConfig


class OTLPExporterConfig(ExporterHelperConfig):
    """The collector's otlp (gRPC) exporter settings."""

    endpoint: str
    compression: Literal["gzip", "none", ""] = "gzip"
    # Opaque, as in the collector: headers often carry credentials.
    headers: dict[str, SecretStr] = {}
    tls: ClientTLSConfig = ClientTLSConfig()
    auth: AuthConfig | None = None

    def validate_config(self) -> list[str]:
        problems = super().validate_config() + [f"tls::{problem}" for problem in self.tls.grpc_problems()]
        try:
            parse_endpoint(self.target())
        except ValueError:
            problems.append(f"endpoint: {self.endpoint!r} must be host:port")
        return problems

    def target(self) -> str:
        """The gRPC target: a URL scheme only says whether TLS is wanted, which ``tls`` decides here."""
        return self.endpoint.split("://", 1)[-1].rstrip("/")
