"""Settings of the ``otlp`` receiver, named as the collector's otlpreceiver."""

from __future__ import annotations

from pydantic import Field, model_validator

from otelml.configauth import AuthConfig
from otelml.configmodel import ComponentConfig, Endpoint
from otelml.tlsconfig import ServerTLSConfig

MIB = 1 << 20


# Server settings of the collector's confighttp and configgrpc that otelml leaves to its libraries.
_METADATA = "client metadata (headers) does not travel with the data here: remove it"


class GRPCSettings(ComponentConfig):
    endpoint: Endpoint = "localhost:4317"
    max_recv_msg_size_mib: int = Field(4, ge=1)
    max_concurrent_streams: int = Field(0, ge=0)  # 0: gRPC's default
    max_concurrent_requests: int = Field(0, ge=0)  # 0: no limit
    tls: ServerTLSConfig | None = None
    auth: AuthConfig | None = None

    unsupported_keys = {
        "transport": "only TCP is supported (endpoint: host:port): remove it",
        "keepalive": "gRPC's keepalive defaults apply: remove it",
        "read_buffer_size": "gRPC's buffer sizes apply: remove it",
        "write_buffer_size": "gRPC's buffer sizes apply: remove it",
        "include_metadata": _METADATA,
    }

    def validate_config(self) -> list[str]:
        return [f"tls::{problem}" for problem in self.tls.grpc_problems()] if self.tls else []


class HTTPSettings(ComponentConfig):
    endpoint: Endpoint = "localhost:4318"
    max_request_body_size: int = Field(20 * MIB, ge=1)
    max_concurrent_requests: int = Field(0, ge=0)  # 0: no limit
    traces_url_path: str = "/v1/traces"
    logs_url_path: str = "/v1/logs"
    metrics_url_path: str = "/v1/metrics"
    tls: ServerTLSConfig | None = None
    auth: AuthConfig | None = None

    unsupported_keys = {
        "cors": "CORS is not supported: serve browsers through a proxy that adds the CORS headers",
        "include_metadata": _METADATA,
        "response_headers": "responses carry no extra headers: remove it",
        "compression_algorithms": "gzip, deflate and zstd bodies are always accepted: remove it",
    }

    def validate_config(self) -> list[str]:
        return [
            f"{name}: must start with /"
            for name in ("traces_url_path", "logs_url_path", "metrics_url_path")
            if not getattr(self, name).startswith("/")
        ]


class Protocols(ComponentConfig):
    grpc: GRPCSettings | None = None
    http: HTTPSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data):
        # "grpc:" with nothing after it enables the protocol with its defaults.
        if isinstance(data, dict):
            return {key: ({} if value is None else value) for key, value in data.items()}
        return data


class OTLPReceiverConfig(ComponentConfig):
    protocols: Protocols = Protocols()

    def validate_config(self) -> list[str]:
        if self.protocols.grpc is None and self.protocols.http is None:
            return ["protocols: must enable at least one of grpc, http"]
        return []
