import re
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr

from otelml.configmodel import ComponentConfig
from otelml.processors.redaction.presets import PRESETS

if TYPE_CHECKING:
    PresetName = str
else:  # the names of the presets, checked by pydantic
    PresetName = Literal[tuple(PRESETS)]
# An HMAC key shorter than this could be guessed together with the small
# space of the values it hides (there are only 2^32 IPv4 addresses).
MIN_HASH_KEY_LENGTH = 16


class RedactionConfig(ComponentConfig):
    """Settings of the ``redaction`` processor; key names follow the collector's where it has them."""

    allow_all_keys: bool = False
    allowed_keys: list[str] = []
    ignored_keys: list[str] = []
    blocked_keys: list[str] = []
    blocked_values: list[str] = []
    blocked_value_presets: list[PresetName] = []
    hash_keys: list[str] = []
    hash_function: Literal["none", "hmac-sha256"] = "none"
    hash_key: SecretStr | None = None
    summary: Literal["debug", "info", "silent"] = "info"

    def validate_config(self) -> list[str]:
        problems = []
        for field in ("blocked_keys", "blocked_values"):
            for index, pattern in enumerate(getattr(self, field)):
                try:
                    re.compile(pattern)
                except re.error as error:
                    problems.append(f"{field}::{index}: invalid regular expression {pattern!r}: {error}")
        hashing = self.hash_keys or self.hash_function != "none"
        key = self.hash_key.get_secret_value() if self.hash_key is not None else ""
        if hashing and len(key) < MIN_HASH_KEY_LENGTH:
            problems.append(
                f"hash_key: must be set, at least {MIN_HASH_KEY_LENGTH} characters long, when hash_keys or hash_function is used"
            )
        return problems
