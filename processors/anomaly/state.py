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
from typing import Callable, NamedTuple

import numpy as np

from pydantic import Field, SecretStr

from otelml.configmodel import ComponentConfig, Duration

KEY_ENV = "OTELML_CHECKPOINT_KEY"
MAGIC = b"OTELML-ANOMALY-CHECKPOINT/2\n"
# Format 1 pickled one object per key; its files cannot be read into per-key arrays.
FORMAT_1_MAGIC = b"OTELML-ANOMALY-CHECKPOINT/1\n"
SIGNATURE_BYTES = hashlib.sha256().digest_size
MIN_KEY_LENGTH = 16


class CheckpointConfig(ComponentConfig):
    path: str | None = None
    interval: Duration = 60.0
    key: SecretStr | None = None

    def validate_config(self) -> list[str]:
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

    def validate_config(self) -> list[str]:
        return ["ttl: must not be negative (0 keeps idle keys)"] if self.ttl < 0 else []


class KeyModels:
    """The per-record path's Python state of one key: its models and what feeds them.

    ``models`` and ``scales`` run parallel to the configured models (a scale
    only for models judged by their residuals); ``rate`` tracks the record
    rate when it is the target. ``calls`` caches the processor's bound calls
    on the models; it is rebuilt, not checkpointed.
    """

    __slots__ = ("models", "scales", "features", "threshold", "rate", "calls")

    def __init__(self, models: list, scales: list, features, threshold, rate=None):
        self.models = models
        self.scales = scales
        self.features = features
        self.threshold = threshold
        self.rate = rate
        self.calls = None

    def __getstate__(self):
        return {name: getattr(self, name) for name in self.__slots__ if name != "calls"}

    def __setstate__(self, state):
        self.calls = None
        for name, value in state.items():
            setattr(self, name, value)


class KeySummary(NamedTuple):
    """What the replay summary shows of one key."""

    count: int
    anomalies: int
    incidents: int
    max_score: float


# Per-key bookkeeping every processor keeps: name -> (shape after the slot axis, dtype, value of a new key).
BOOKKEEPING = {
    "count": ((), np.int64, 0),
    "last_seen": ((), np.float64, -np.inf),
    "anomalies": ((), np.int64, 0),
    "incidents": ((), np.int64, 0),
    "max_score": ((), np.float64, 0.0),
}
INITIAL_SLOTS = 64


class KeyStore:
    """Key -> slot in per-key numpy arrays, least recently used first.

    Each field (see :data:`BOOKKEEPING`; scorers and the trend add theirs) is
    one array whose first axis is the slot, so a batch's keys are read and
    written with one fancy index instead of one Python object per key.
    ``objects`` holds per-slot Python state for what has no array form.

    ``max_keys`` bounds the map (the least recently used key goes first);
    keys idle longer than ``ttl`` (by record time: the newest record seen
    is "now") are dropped by :meth:`expire`. ``ttl`` 0 keeps idle keys. A
    slot freed while a batch is scored is reused only after
    :meth:`expire`, since that batch still works on it.

    >>> store = KeyStore(max_keys=2, ttl=10.0, fields={})
    >>> store.assign(["a", "b", "c"], None).tolist(), list(store.keys), store.evicted_lru
    ([0, 1, 2], ['b', 'c'], 1)
    >>> store.expire(); store.assign(["d"], None).tolist()
    [0]
    """

    def __init__(self, max_keys: int, ttl: float, fields: dict[str, tuple]):
        self.max_keys = max_keys
        self.ttl = ttl
        self.fields = {**BOOKKEEPING, **fields}
        self.keys: collections.OrderedDict[tuple, int] = collections.OrderedDict()
        self.arrays = {name: np.full((INITIAL_SLOTS, *shape), fill, dtype) for name, (shape, dtype, fill) in self.fields.items()}
        self.objects: list = [None] * INITIAL_SLOTS
        self._free = list(range(INITIAL_SLOTS - 1, -1, -1))
        self._released: list[int] = []
        self.clock = float("-inf")
        self.evicted_lru = 0
        self.evicted_ttl = 0

    def assign(self, keys: list, create: Callable[[], object] | None) -> np.ndarray:
        """The slots of ``keys`` (new keys get fresh ones); each key becomes the most recently used.

        ``create`` makes a new key's entry in :attr:`objects`.
        """
        slots = np.empty(len(keys), dtype=np.intp)
        fresh = []
        entries, free = self.keys, self._free
        for position, key in enumerate(keys):
            slot = entries.get(key)
            if slot is not None:
                entries.move_to_end(key)
            else:
                if not free:
                    self._grow()
                slot = entries[key] = free.pop()
                fresh.append(slot)
                if create is not None:
                    self.objects[slot] = create()
                if len(entries) > self.max_keys:
                    self._release(entries.popitem(last=False)[1])
                    self.evicted_lru += 1
            slots[position] = slot
        if fresh:
            self._reset(fresh)
        return slots

    def _grow(self) -> None:
        size = len(self.objects)
        for name, array in self.arrays.items():
            shape, dtype, fill = self.fields[name]
            self.arrays[name] = np.concatenate([array, np.full((size, *shape), fill, dtype)])
        self.objects.extend([None] * size)
        self._free.extend(range(2 * size - 1, size - 1, -1))

    def _reset(self, slots: list[int]) -> None:
        for name, array in self.arrays.items():
            array[slots] = self.fields[name][2]

    def _release(self, slot: int) -> None:
        self._released.append(slot)

    def expire(self) -> None:
        """Drop keys whose last record is older than ``clock - ttl``; slots freed since the last call become reusable."""
        if self.ttl:
            horizon = self.clock - self.ttl
            last_seen = self.arrays["last_seen"]
            # Keys are in use order, which follows record time closely enough to stop at the first live one.
            while self.keys:
                key, slot = next(iter(self.keys.items()))
                if last_seen[slot] >= horizon:
                    break
                del self.keys[key]
                self._release(slot)
                self.evicted_ttl += 1
        for slot in self._released:
            self.objects[slot] = None
        self._free.extend(self._released)
        self._released.clear()

    def summary(self, slot: int) -> KeySummary:
        arrays = self.arrays
        return KeySummary(int(arrays["count"][slot]), int(arrays["anomalies"][slot]), int(arrays["incidents"][slot]),
                          float(arrays["max_score"][slot]))

    def snapshot(self) -> dict:
        """Every live key's state, keys in use order: what a checkpoint holds."""
        slots = list(self.keys.values())
        return {"keys": list(self.keys), "arrays": {name: array[slots] for name, array in self.arrays.items()},
                "objects": [self.objects[slot] for slot in slots], "clock": self.clock}

    def restore(self, snapshot: dict) -> None:
        """Replace the state by a :meth:`snapshot` taken with the same fields."""
        count = len(snapshot["keys"])
        while len(self.objects) < count:
            self._grow()
        for name, array in self.arrays.items():
            array[:] = self.fields[name][2]
            array[:count] = snapshot["arrays"][name]
        self.objects = [*snapshot["objects"], *[None] * (len(self.objects) - count)]
        self.keys = collections.OrderedDict(zip(snapshot["keys"], range(count)))
        self._free = list(range(len(self.objects) - 1, count - 1, -1))
        self._released.clear()
        self.clock = snapshot["clock"]


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
    if data.startswith(FORMAT_1_MAGIC):
        raise CheckpointError(
            f"{path} was written by an earlier otelml in checkpoint format 1, which this version cannot read; "
            "refusing to load it (remove the file to start afresh)")
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
    return pickle.dumps({"fingerprint": fingerprint, **store.snapshot()}, protocol=pickle.HIGHEST_PROTOCOL)


def load_state(payload: bytes) -> dict:
    """Unpickle a payload whose signature was verified by :func:`read_checkpoint`."""
    return pickle.loads(payload)
