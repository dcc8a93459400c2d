from pydantic import Field

from otelml.configmodel import ComponentConfig, Duration


class BatchConfig(ComponentConfig):
    """The collector's batch processor settings."""

    send_batch_size: int = Field(8192, ge=0)
    send_batch_max_size: int = Field(0, ge=0)
    timeout: Duration = 0.2

    def validate_config(self) -> list[str]:
        problems = []
        if self.timeout < 0:
            problems.append("timeout: must not be negative")
        if self.send_batch_max_size and self.send_batch_max_size < self.send_batch_size:
            problems.append("send_batch_max_size: must be greater than or equal to send_batch_size")
        return problems
