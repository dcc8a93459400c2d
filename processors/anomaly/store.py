"""The key store: each key's state in a slot of per-key numpy arrays, least recently used first.

The state layout is declared once: every stage of the engine (models,
residual scales, calibration, incidents, trend, ...) names the per-key
fields it owns (:class:`Field`: shape after the slot axis, dtype, value of a
new key) and :class:`StateLayout` assembles them. A River model lives in an
``object`` field, one Python object per key, so the store, the checkpoint
and the per-key export treat it like any other field.

Per-key export and import (what a Kafka state changelog is built on):

- :meth:`KeyStore.export` ``(keys) -> {key: bytes}``: each value is one key's
  full state (its array rows and River objects), signed with HMAC-SHA256
  under the checkpoint key and tagged with the layout fingerprint (see
  :mod:`~otelml.processors.anomaly.checkpoint`);
- :meth:`KeyStore.import_` ``(entries)`` verifies each entry (signature,
  then layout) and installs it, refusing the whole call with
  :class:`~otelml.processors.anomaly.checkpoint.CheckpointError` when one
  fails, like a checkpoint file is refused;
- :meth:`KeyStore.remove` ``(keys)`` drops keys (e.g. of a revoked partition);
- :meth:`KeyStore.take_dirty` ``() -> set`` gives the keys whose state
  changed (scored, imported) since the last call, and forgets them;
  evicted and removed keys are not in it.

>>> layout = StateLayout({"total": Field((), np.float64, 0.0)})
>>> store = KeyStore(max_keys=10, ttl=0.0, layout=layout, signing_key=b"a-long-enough-signing-key")
>>> slots = store.assign([("a",), ("b",)])
>>> store.arrays["total"][slots] = [1.5, 2.5]
>>> entries = store.export([("b",)])
>>> other = KeyStore(max_keys=10, ttl=0.0, layout=layout, signing_key=b"a-long-enough-signing-key")
>>> other.import_(entries)
>>> float(other.arrays["total"][other.keys[("b",)]]), sorted(other.take_dirty())
(2.5, [('b',)])
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

import numpy as np

from otelml.keysummary import KeySummary
from otelml.processors.anomaly import checkpoint

INITIAL_SLOTS = 64


class Field(NamedTuple):
    """One per-key field: the shape after the slot axis, the dtype, and a new key's value."""

    shape: tuple
    dtype: Any
    fill: Any


class Stage(Protocol):
    """A part of the processor that keeps per-key state: its :class:`Field` s, by names of its own."""

    @property
    def fields(self) -> Mapping[str, Field]: ...


# Per-key bookkeeping every processor keeps.
BOOKKEEPING = {
    "count": Field((), np.int64, 0),
    "last_seen": Field((), np.float64, -np.inf),
    "anomalies": Field((), np.int64, 0),
    "incidents": Field((), np.int64, 0),
    "max_score": Field((), np.float64, 0.0),
}


class StateLayout:
    """Every per-key field, by name; numeric fields pack into one fixed-size row per key.

    Parameters
    ----------
    fields
        Field name -> :class:`Field` (the bookkeeping fields are added).
    classes
        Names of the model classes kept in object fields, part of the fingerprint.

    Examples
    --------
    >>> layout = StateLayout({"mean": Field((), np.float64, np.nan), "model": Field((), object, None)})
    >>> layout.numeric, layout.objects, layout.row.itemsize
    (['count', 'last_seen', 'anomalies', 'incidents', 'max_score', 'mean'], ['model'], 48)
    >>> layout.fingerprint == StateLayout({"mean": Field((), np.float64, 0.0)}).fingerprint
    False
    """

    def __init__(self, fields: dict[str, Field], classes: Iterable[str] = ()):
        self.fields = {**BOOKKEEPING, **fields}
        self.numeric = [name for name, field in self.fields.items() if np.dtype(field.dtype) != object]
        self.objects = [name for name, field in self.fields.items() if np.dtype(field.dtype) == object]
        self.row = np.dtype(
            [(name, np.dtype(self.fields[name].dtype).newbyteorder("<"), self.fields[name].shape) for name in self.numeric]
        )
        described = {
            name: [list(field.shape), np.dtype(field.dtype).str, repr(field.fill)] for name, field in self.fields.items()
        }
        self.description = {"fields": described, "classes": sorted(classes)}
        text = json.dumps(self.description, sort_keys=True).encode()
        self.fingerprint = hashlib.sha256(text).digest()[: checkpoint.LAYOUT_TAG_BYTES]

    def empty(self, size: int) -> dict[str, np.ndarray]:
        """Arrays of ``size`` new keys."""
        return {name: _filled(field, size) for name, field in self.fields.items()}


def _filled(field: Field, size: int) -> np.ndarray:
    array = np.empty((size, *field.shape), dtype=field.dtype)
    array[...] = field.fill
    return array


class KeyStore:
    """Key -> slot in the per-key arrays of a :class:`StateLayout`, least recently used first.

    ``max_keys`` bounds the map (the least recently used key goes first);
    keys idle longer than ``ttl`` (by record time: the newest record seen is
    "now") are dropped by :meth:`expire`. ``ttl`` 0 keeps idle keys. A slot
    freed while a batch is scored is reused only after :meth:`expire`,
    since that batch still works on it.

    >>> store = KeyStore(max_keys=2, ttl=10.0, layout=StateLayout({}))
    >>> store.assign(["a", "b", "c"]).tolist(), list(store.keys), store.evicted_lru
    ([0, 1, 2], ['b', 'c'], 1)
    >>> store.expire(); store.assign(["d"]).tolist()
    [0]
    """

    def __init__(self, max_keys: int, ttl: float, layout: StateLayout, signing_key: bytes | None = None):
        self.max_keys = max_keys
        self.ttl = ttl
        self.layout = layout
        self.signing_key = signing_key
        self.keys: collections.OrderedDict[Any, int] = collections.OrderedDict()
        self.arrays = layout.empty(INITIAL_SLOTS)
        self._free = list(range(INITIAL_SLOTS - 1, -1, -1))
        self._released: list[int] = []
        self._dirty: set = set()
        self.clock = float("-inf")
        self.evicted_lru = 0
        self.evicted_ttl = 0

    @property
    def capacity(self) -> int:
        return len(self.arrays["count"])

    def assign(self, keys: list) -> np.ndarray:
        """The slots of ``keys`` (new keys get fresh ones); each key becomes the most recently used and dirty."""
        slots = np.empty(len(keys), dtype=np.intp)
        fresh, evicted = [], []
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
                if len(entries) > self.max_keys:
                    old_key, old_slot = entries.popitem(last=False)
                    evicted.append(old_key)
                    self._released.append(old_slot)
                    self.evicted_lru += 1
            slots[position] = slot
        if fresh:
            self._reset(fresh)
        self._dirty.update(keys)
        if evicted:
            self._dirty.difference_update([key for key in evicted if key not in entries])
        return slots

    def _grow(self) -> None:
        size = self.capacity
        for name, array in self.arrays.items():
            self.arrays[name] = np.concatenate([array, _filled(self.layout.fields[name], size)])
        self._free.extend(range(2 * size - 1, size - 1, -1))

    def _reset(self, slots: list[int]) -> None:
        for name, array in self.arrays.items():
            array[slots] = self.layout.fields[name].fill

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
                self._dirty.discard(key)
                self._released.append(slot)
                self.evicted_ttl += 1
        if self._released:
            # Object fields let go of their models now, not when the slot is reused.
            self._reset(self._released)
            self._free.extend(self._released)
            self._released.clear()

    def summary(self, slot: int) -> KeySummary:
        arrays = self.arrays
        return KeySummary(
            int(arrays["count"][slot]),
            int(arrays["anomalies"][slot]),
            int(arrays["incidents"][slot]),
            float(arrays["max_score"][slot]),
        )

    # Per-key export and import -----------------------------------------------

    def take_dirty(self) -> set:
        """Keys whose state changed since the last call (scored or imported), still live."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def export(self, keys: Iterable) -> dict[Any, bytes]:
        """Each live key of ``keys``: its full state, signed and tagged with the layout (see the module docstring)."""
        present = [key for key in keys if key in self.keys]
        slots = [self.keys[key] for key in present]
        rows = self._rows(slots)
        objects = [tuple(self.arrays[name][slot] for name in self.layout.objects) for slot in slots]
        return {
            key: checkpoint.encode_entry(key, rows[position].tobytes(), objects[position], self.layout.fingerprint, self._key())
            for position, key in enumerate(present)
        }

    def import_(self, entries: dict[Any, bytes]) -> None:
        """Install exported keys (replacing their state here); all are verified before any is installed."""
        decoded = [checkpoint.decode_entry(key, data, self.layout.fingerprint, self._key()) for key, data in entries.items()]
        keys = [key for key, _, _ in decoded]
        slots = self.assign(keys)
        rows = np.frombuffer(b"".join(row for _, row, _ in decoded), dtype=self.layout.row)
        for name in self.layout.numeric:
            self.arrays[name][slots] = rows[name]
        for position, name in enumerate(self.layout.objects):
            self.arrays[name][slots] = [objects[position] for _, _, objects in decoded]
        if len(rows):
            self.clock = max(self.clock, float(np.max(rows["last_seen"])))

    def remove(self, keys: Iterable) -> None:
        """Drop ``keys`` (those present) and their state."""
        for key in keys:
            slot = self.keys.pop(key, None)
            if slot is not None:
                self._dirty.discard(key)
                self._released.append(slot)
        self.expire_released()

    def expire_released(self) -> None:
        """Make slots released outside a batch reusable at once."""
        ttl, self.ttl = self.ttl, 0.0
        try:
            self.expire()
        finally:
            self.ttl = ttl

    def _rows(self, slots: list[int]) -> np.ndarray:
        rows = np.zeros(len(slots), dtype=self.layout.row)
        for name in self.layout.numeric:
            rows[name] = self.arrays[name][slots]
        return rows

    def _key(self) -> bytes:
        if self.signing_key is None:
            raise checkpoint.CheckpointError("per-key state is signed with the checkpoint key: set state.checkpoint.key")
        return self.signing_key

    # Whole-store snapshots (the checkpoint file) -------------------------------

    def dump(self, settings: str, parents: bytes = b"") -> bytes:
        """Every live key, in use order, as one checkpoint payload (see :func:`checkpoint.dump_payload`)."""
        keys = list(self.keys)
        return checkpoint.dump_payload(settings, self.layout.fingerprint, self.clock, self.export(keys), parents)

    def load(self, payload: bytes | checkpoint.Payload, settings: str) -> bool:
        """Replace the state by a :meth:`dump` (or its decoded contents); False (state untouched) when it was written with other settings.

        Raises :class:`~otelml.processors.anomaly.checkpoint.CheckpointError` for the same settings
        in another state layout (another otelml).
        """
        content = payload if isinstance(payload, checkpoint.Payload) else checkpoint.load_payload(payload)
        if content.settings != settings:
            return False
        if content.layout != self.layout.fingerprint:
            raise checkpoint.CheckpointError(
                "the checkpoint has an incompatible state layout: it was written by another otelml version "
                "with other per-key fields; refusing to load it (remove the file to start afresh)"
            )
        self.keys.clear()
        self.arrays = self.layout.empty(self.capacity)
        self._free = list(range(self.capacity - 1, -1, -1))
        self._released.clear()
        self.import_(content.entries)
        self.clock = content.clock
        self._dirty.clear()
        return True
