from typing import Literal

from pydantic import SecretStr

from otelml.configauth import AuthConfig
from otelml.configmodel import http_url_problem
from otelml.exporterhelper import ExporterHelperConfig
from otelml.tlsconfig import ClientTLSConfig


class OTLPHTTPExporterConfig(ExporterHelperConfig):
    """The collector's otlphttp exporter settings."""

    endpoint: str | None = None
    traces_endpoint: str | None = None
    logs_endpoint: str | None = None
    metrics_endpoint: str | None = None
    encoding: Literal["proto", "json"] = "proto"
    compression: Literal["gzip", "none", ""] = "gzip"
    # Opaque, as in the collector: headers often carry credentials.
    headers: dict[str, SecretStr] = {}
    tls: ClientTLSConfig = ClientTLSConfig()
    auth: AuthConfig | None = None

    def validate_config(self) -> list[str]:
        problems = super().validate_config()
        urls = {
            "endpoint": self.endpoint,
            "traces_endpoint": self.traces_endpoint,
            "logs_endpoint": self.logs_endpoint,
            "metrics_endpoint": self.metrics_endpoint,
        }
        if not any(urls.values()):
            problems.append("endpoint: must be set (or each of traces_endpoint, logs_endpoint, metrics_endpoint)")
        for name, url in urls.items():
            if url and (problem := http_url_problem(url)) is not None:
                problems.append(f"{name}: {problem}")
        return problems

    def url(self, signal_name: str) -> str | None:
        """The URL for one signal: its own setting, else ``endpoint`` + ``/v1/<signal>``."""
        specific = getattr(self, f"{signal_name}_endpoint")
        if specific:
            return specific
        return f"{self.endpoint.rstrip('/')}/v1/{signal_name}" if self.endpoint else None
