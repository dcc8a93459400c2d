"""Per-key state: an LRU map with idle expiry, and signed checkpoints of it.

A checkpoint is a pickle, and unpickling runs code named in the file; so
the file carries an HMAC-SHA256 of its contents under a secret key, and is
only unpickled when that signature checks out. A file written by anyone
without the key is refused with :class:`CheckpointError`.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import os
import pickle
from pathlib import Path
from typing import Callable

from pydantic import Field, SecretStr

from otelml.configmodel import ComponentConfig, Duration

KEY_ENV = "OTELML_CHECKPOINT_KEY"
MAGIC = b"OTELML-ANOMALY-CHECKPOINT/1\n"
SIGNATURE_BYTES = hashlib.sha256().digest_size
MIN_KEY_LENGTH = 16


class CheckpointConfig(ComponentConfig):
    path: str | None = None
    interval: Duration = 60.0
    key: SecretStr | None = None

    def validate(self) -> list[str]:
        problems = []
        if self.path is None:
            return problems
        if self.interval <= 0:
            problems.append("interval: must be positive")
        secret = self.signing_key()
        if secret is None:
            problems.append(f"key: required to sign the checkpoint (set it, or the {KEY_ENV} environment variable)")
        elif len(secret) < MIN_KEY_LENGTH:
            problems.append(f"key: must be at least {MIN_KEY_LENGTH} characters long")
        return problems

    def signing_key(self) -> bytes | None:
        if self.key is not None and self.key.get_secret_value():
            return self.key.get_secret_value().encode()
        from_env = os.environ.get(KEY_ENV)
        return from_env.encode() if from_env else None


class StateConfig(ComponentConfig):
    max_keys: int = Field(10000, ge=1)
    ttl: Duration = 3600.0
    checkpoint: CheckpointConfig = CheckpointConfig()

    def validate(self) -> list[str]:
        return ["ttl: must not be negative (0 keeps idle keys)"] if self.ttl < 0 else []


class KeyState:
    """Everything learned about one key.

    ``models`` and ``scales`` run parallel to the configured models (a scale
    only for models judged by their residuals); ``trend`` holds the recent
    (time, score) pairs; ``rate`` tracks the record rate when it is the
    target; the last three fields feed the replay summary. ``calls`` caches the
    processor's bound calls on the models; it is rebuilt, not checkpointed.
    """

    __slots__ = ("models", "scales", "features", "threshold", "trend", "rate", "count", "last_seen",
                 "anomalies", "incidents", "max_score", "calls")

    def __init__(self, models: list, scales: list, features, threshold, trend: tuple, rate=None):
        self.models = models
        self.scales = scales
        self.features = features
        self.threshold = threshold
        self.trend = trend
        self.rate = rate
        self.count = 0
        self.last_seen = float("-inf")
        self.anomalies = 0
        self.incidents = 0
        self.max_score = 0.0
        self.calls = None

    def __getstate__(self):
        return {name: getattr(self, name) for name in self.__slots__ if name != "calls"}

    def __setstate__(self, state):
        self.calls = None
        for name, value in state.items():
            setattr(self, name, value)


class KeyStore:
    """Key -> :class:`KeyState`, least recently used first.

    ``max_keys`` bounds the map (the least recently used key goes first);
    keys idle longer than ``ttl`` (by record time: the newest record seen
    is "now") are dropped by :meth:`expire`. ``ttl`` 0 keeps idle keys.

    >>> store = KeyStore(max_keys=2, ttl=10.0)
    >>> for key in ("a", "b", "c"):
    ...     _ = store.touch(key, lambda: KeyState([], [], None, None, None))
    >>> list(store.keys), store.evicted_lru
    (['b', 'c'], 1)
    """

    def __init__(self, max_keys: int, ttl: float):
        self.max_keys = max_keys
        self.ttl = ttl
        self.keys: collections.OrderedDict[tuple, KeyState] = collections.OrderedDict()
        self.clock = float("-inf")
        self.evicted_lru = 0
        self.evicted_ttl = 0

    def touch(self, key, create: Callable[[], KeyState]) -> KeyState:
        state = self.keys.get(key)
        if state is not None:
            self.keys.move_to_end(key)
            return state
        state = self.keys[key] = create()
        if len(self.keys) > self.max_keys:
            self.keys.popitem(last=False)
            self.evicted_lru += 1
        return state

    def expire(self) -> None:
        """Drop keys whose last record is older than ``clock - ttl``."""
        if not self.ttl:
            return
        horizon = self.clock - self.ttl
        # Keys are in use order, which follows record time closely enough to stop at the first live one.
        while self.keys:
            key, state = next(iter(self.keys.items()))
            if state.last_seen >= horizon:
                break
            del self.keys[key]
            self.evicted_ttl += 1


class CheckpointError(Exception):
    """A checkpoint exists but may not be loaded."""


def sign(payload: bytes, key: bytes) -> bytes:
    return hmac.new(key, MAGIC + payload, hashlib.sha256).digest()


def write_checkpoint(path: Path, payload: bytes, key: bytes) -> None:
    """Write ``payload`` signed, atomically (temporary file, then rename), readable by the owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(MAGIC + sign(payload, key) + payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_checkpoint(path: Path, key: bytes) -> bytes | None:
    """The verified payload of ``path``, or None when there is no checkpoint yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + SIGNATURE_BYTES:
        raise CheckpointError(f"{path} is not an anomaly checkpoint; refusing to load it")
    signature = data[len(MAGIC):len(MAGIC) + SIGNATURE_BYTES]
    payload = data[len(MAGIC) + SIGNATURE_BYTES:]
    if not hmac.compare_digest(signature, sign(payload, key)):
        raise CheckpointError(
            f"{path} failed its signature check: it was changed, or written with another key; "
            "refusing to load it (restore the right key, or remove the file to start afresh)")
    return payload


def dump_state(store: KeyStore, fingerprint: str) -> bytes:
    return pickle.dumps({"fingerprint": fingerprint, "clock": store.clock, "keys": store.keys},
                        protocol=pickle.HIGHEST_PROTOCOL)


def load_state(payload: bytes) -> dict:
    """Unpickle a payload whose signature was verified by :func:`read_checkpoint`."""
    return pickle.loads(payload)
