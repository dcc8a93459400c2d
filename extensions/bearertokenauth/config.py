from pathlib import Path

from pydantic import SecretStr, field_validator

from otelml.configmodel import ComponentConfig


class BearerTokenAuthConfig(ComponentConfig):
    """The collector's bearertokenauth extension settings."""

    # Header names travel lower-case in gRPC metadata; HTTP compares them case-insensitively.
    header: str = "authorization"
    scheme: str = "Bearer"
    token: SecretStr | None = None
    filename: str | None = None

    @field_validator("header")
    @classmethod
    def _lower_case(cls, value: str) -> str:
        return value.strip().lower()

    def validate_config(self) -> list[str]:
        problems = []
        if (self.token is None) == (self.filename is None):
            problems.append("token: set exactly one of token and filename")
        if self.token is not None and not self.token.get_secret_value().strip():
            problems.append("token: must not be empty")
        if self.filename is not None and not Path(self.filename).is_file():
            problems.append(f"filename: cannot read {self.filename}")
        if not self.header:
            problems.append("header: must not be empty")
        return problems
