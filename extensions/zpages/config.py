from typing import Any

from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration
from otelml.tlsconfig import ServerTLSConfig


class ZPagesConfig(ComponentConfig):
    endpoint: str = "localhost:55679"
    tls: ServerTLSConfig | None = None
    # Keys per source on the live page (the highest recent scores, and the highest forecasts).
    top: int = Field(20, ge=1, le=1000)
    refresh: Duration = 2.0
    # The collector's zpages has it; refused with a reason.
    expvar: Any = Field(None, exclude=True)

    def validate_config(self) -> list[str]:
        problems = []
        if self.expvar is not None:
            problems.append("expvar: not supported (it serves Go runtime variables; otelml's own metrics are on service::telemetry::metrics)")
        host, sep, port = self.endpoint.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            problems.append(f"endpoint: {self.endpoint!r} is not host:port")
        if self.refresh <= 0:
            problems.append("refresh: must be positive")
        return problems
