"""What the ``redaction`` processor does to one attribute list or log body, in place on protobuf.

Each attribute key gets one action, decided once per key and remembered:

1. ``ignored_keys``: left as they are (counted as ignored);
2. without ``allow_all_keys``, keys not in ``allowed_keys`` (nor in
   ``hash_keys``) are deleted;
3. ``hash_keys``: the whole value becomes its HMAC-SHA256 (hex), the same
   for the same value and key, so that data can still be grouped by it;
4. keys matching a ``blocked_keys`` pattern: the whole value is masked;
5. any other value: the parts matching a blocked value pattern (presets
   first, then ``blocked_values``) are masked, in strings and in the
   strings inside arrays and maps.

Masking writes ``****``, or the HMAC of the masked text with
``hash_function: hmac-sha256``. Each attribute list that changed gets the
collector's summary attributes (``redaction.masked.count`` etc.).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otelml.processors.redaction.config import RedactionConfig
from otelml.processors.redaction.presets import PRESETS

MASK = "****"
SUMMARY_KEYS = frozenset(
    f"redaction.{part}{outcome}.{what}"
    for part in ("", "body.")
    for outcome in ("redacted", "masked", "ignored")
    for what in ("keys", "count")
)
# Decisions are remembered per key; a sender making up keys must not grow this without bound.
MAX_REMEMBERED_KEYS = 10_000


class Action(enum.Enum):
    SUMMARY = "summary"
    IGNORE = "ignore"
    DELETE = "delete"
    HASH = "hash"
    MASK = "mask"
    SCAN = "scan"


class Redactor:
    """Redacts attribute lists and log bodies as ``config`` says.

    >>> from opentelemetry.proto.common.v1.common_pb2 import KeyValueList
    >>> redactor = Redactor(RedactionConfig(allowed_keys=["note"], blocked_value_presets=["email"]))
    >>> attributes = KeyValueList().values
    >>> attributes.add(key="note").value.string_value = "mail bob@example.com"
    >>> attributes.add(key="user.password").value.string_value = "hunter2"
    >>> redactor.redact_attributes(attributes)
    >>> [(a.key, a.value.WhichOneof("value"), getattr(a.value, a.value.WhichOneof("value"))) for a in attributes]
    [('note', 'string_value', 'mail ****'), ('redaction.redacted.count', 'int_value', 1), ('redaction.masked.count', 'int_value', 1)]
    """

    def __init__(self, config: RedactionConfig):
        self.config = config
        self._allowed = frozenset(config.allowed_keys) | frozenset(config.hash_keys)
        self._ignored = frozenset(config.ignored_keys)
        self._hashed = frozenset(config.hash_keys)
        self._blocked_keys = [re.compile(pattern) for pattern in config.blocked_keys]
        key = config.hash_key.get_secret_value().encode() if config.hash_key is not None else b""
        self._hmac = hmac.new(key, digestmod=hashlib.sha256) if key else None
        self._mask_with_hash = config.hash_function == "hmac-sha256"
        self._value_masks = [
            (PRESETS[name].pattern, self._replacement(PRESETS[name].confirm))
            for name in PRESETS
            if name in config.blocked_value_presets
        ]
        self._value_masks += [(re.compile(pattern), self._replacement(None)) for pattern in config.blocked_values]
        self._actions: dict[str, Action] = {}

    def digest(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data`` under ``hash_key``, in hex."""
        assert self._hmac is not None, "digests need hash_key"
        keyed = self._hmac.copy()
        keyed.update(data)
        return keyed.hexdigest()

    def mask_text(self, text: str) -> str | None:
        """``text`` with every blocked value masked, or None when nothing was."""
        result = text
        for pattern, replacement in self._value_masks:
            result = pattern.sub(replacement, result)
        return None if result == text else result

    def redact_attributes(self, attributes) -> None:
        """Redact one repeated ``KeyValue`` field in place and add the summary attributes."""
        redacted, masked, ignored, doomed = [], [], [], []
        for index, attribute in enumerate(attributes):
            key = attribute.key
            action = self._actions.get(key) or self._decide(key)
            if action is Action.SCAN:
                if self._value_masks and self._mask_value(attribute.value):
                    masked.append(key)
            elif action is Action.DELETE:
                doomed.append(index)
                redacted.append(key)
            elif action is Action.HASH:
                attribute.value.string_value = self.digest(_value_bytes(attribute.value))
                masked.append(key)
            elif action is Action.MASK:
                attribute.value.string_value = self.digest(_value_bytes(attribute.value)) if self._mask_with_hash else MASK
                masked.append(key)
            elif action is Action.IGNORE:
                ignored.append(key)
        for index in reversed(doomed):
            del attributes[index]
        if self.config.summary != "silent" and (redacted or masked or ignored):
            self._summarize(attributes, "redaction", (("redacted", redacted), ("masked", masked), ("ignored", ignored)))

    def redact_body(self, body: AnyValue, attributes) -> None:
        """Mask blocked values in a log body (strings, and strings in arrays and maps)."""
        if self._value_masks and self._mask_value(body) and self.config.summary != "silent":
            self._summarize(attributes, "redaction.body", (("masked", ["body"]),))

    def _decide(self, key: str) -> Action:
        if key in SUMMARY_KEYS:
            action = Action.SUMMARY
        elif key in self._ignored:
            action = Action.IGNORE
        elif not self.config.allow_all_keys and key not in self._allowed:
            action = Action.DELETE
        elif key in self._hashed:
            action = Action.HASH
        elif any(pattern.search(key) for pattern in self._blocked_keys):
            action = Action.MASK
        else:
            action = Action.SCAN
        if len(self._actions) < MAX_REMEMBERED_KEYS:
            self._actions[key] = action
        return action

    def _replacement(self, confirm: Callable[[str], bool] | None) -> str | Callable[[re.Match], str]:
        if confirm is None and not self._mask_with_hash:
            return MASK

        def replace(match: re.Match) -> str:
            text = match.group()
            if confirm is not None and not confirm(text):
                return text
            return self.digest(text.encode()) if self._mask_with_hash else MASK

        return replace

    def _mask_value(self, value: AnyValue) -> bool:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            masked = self.mask_text(value.string_value)
            if masked is None:
                return False
            value.string_value = masked
            return True
        if kind == "array_value":
            children = value.array_value.values
        elif kind == "kvlist_value":
            children = [entry.value for entry in value.kvlist_value.values]
        else:
            return False
        changed = False
        for child in children:
            changed = self._mask_value(child) or changed
        return changed

    def _summarize(self, attributes, prefix: str, outcomes) -> None:
        """Add to the ``<prefix>.<outcome>.count`` (and, at debug, ``.keys``) attributes.

        Values already there are added to, so that the summary of two
        redaction processors in a row covers both.
        """
        for outcome, keys in outcomes:
            if not keys:
                continue
            count = _attribute(attributes, f"{prefix}.{outcome}.count")
            count.value.int_value += len(keys)
            if self.config.summary == "debug" and outcome != "ignored":
                names = _attribute(attributes, f"{prefix}.{outcome}.keys")
                earlier = names.value.string_value.split(",") if names.value.string_value else []
                names.value.string_value = ",".join(sorted(earlier + keys))


def _attribute(attributes, key: str):
    """The attribute named ``key``, added (empty) when missing."""
    for attribute in attributes:
        if attribute.key == key:
            return attribute
    return attributes.add(key=key)


def _value_bytes(value: AnyValue) -> bytes:
    """The bytes a whole value is hashed from: its text for scalars, so that 5050 and "5050" agree."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value.encode()
    if kind == "bool_value":
        return b"true" if value.bool_value else b"false"
    if kind in ("int_value", "double_value"):
        return str(getattr(value, kind)).encode()
    if kind == "bytes_value":
        return value.bytes_value
    return value.SerializeToString(deterministic=True)
