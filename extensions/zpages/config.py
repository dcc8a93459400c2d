from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration, Endpoint
from otelml.tlsconfig import ServerTLSConfig


class ZPagesConfig(ComponentConfig):
    unsupported_keys = {
        "expvar": "it serves Go runtime variables; otelml's own metrics are on service::telemetry::metrics: remove it",
    }

    endpoint: Endpoint = "localhost:55679"
    tls: ServerTLSConfig | None = None
    # Keys per source on the live page (the highest recent scores, and the highest forecasts).
    top: int = Field(20, ge=1, le=1000)
    refresh: Duration = 2.0

    def validate_config(self) -> list[str]:
        return ["refresh: must be positive"] if self.refresh <= 0 else []
