from otelml.configmodel import ComponentConfig, Endpoint


class HealthCheckConfig(ComponentConfig):
    endpoint: Endpoint = "localhost:13133"
    path: str = "/"

    def validate_config(self) -> list[str]:
        return [] if self.path.startswith("/") else ["path: must start with /"]
