"""Signed per-key state and checkpoint files.

State is pickled (River models are Python objects), and unpickling runs
code named in the data; so every piece carries an HMAC-SHA256 under a
secret key and is only unpickled once the signature checks out.

One key's state is an *entry*: signature, the tag of the state layout it
was written with, then the pickled key, its packed array row and its
objects. A checkpoint file is the same entries for every live key, in a
signed file with the settings fingerprint, the layout tag and the clock,
and with the parent groups' own payload (their key store's, in their
layout; empty without ``parent``).
What is refused, and how:

- a changed or foreign file or entry (signature): :class:`CheckpointError`
  saying it failed its signature check;
- one written with another state layout (another otelml, other fields or
  model classes) under the same settings: :class:`CheckpointError` saying
  the layout is incompatible;
- a file written with other settings is read but not used (the processor
  warns and starts afresh).

>>> secret = b"a-long-enough-signing-key"
>>> entry = encode_entry(("checkout",), b"\\x01", (None,), b"L" * LAYOUT_TAG_BYTES, secret)
>>> decode_entry(("checkout",), entry, b"L" * LAYOUT_TAG_BYTES, secret)
(('checkout',), b'\\x01', (None,))
>>> decode_entry(("checkout",), entry, b"M" * LAYOUT_TAG_BYTES, secret)
Traceback (most recent call last):
...
otelml.checkpoint.CheckpointError: state of key ('checkout',) has an incompatible state layout (written by another otelml or with other models); refusing to load it
"""

from __future__ import annotations

import hmac
import pickle
import re
from pathlib import Path
from typing import Any, NamedTuple

from otelml.checkpoint import SIGNATURE_BYTES, CheckpointError, signature

FORMAT = 3
MAGIC = b"OTELML-ANOMALY-CHECKPOINT/3\n"
_ANY_MAGIC = re.compile(rb"OTELML-ANOMALY-CHECKPOINT/(\d+)\n")
ENTRY_DOMAIN = b"OTELML-ANOMALY-KEY/3\n"
LAYOUT_TAG_BYTES = 16


class Payload(NamedTuple):
    """What a verified checkpoint file holds."""

    settings: str
    layout: bytes
    clock: float
    entries: dict[Any, bytes]
    parents: bytes


def encode_entry(key: Any, row: bytes, objects: tuple, layout: bytes, secret: bytes) -> bytes:
    """One key's state: signature, layout tag, then the pickled key, packed row and objects."""
    body = layout + pickle.dumps((key, row, objects), protocol=pickle.HIGHEST_PROTOCOL)
    return signature(ENTRY_DOMAIN, body, secret) + body


def decode_entry(key: Any, data: bytes, layout: bytes, secret: bytes) -> tuple[Any, bytes, tuple]:
    """``(key, row, objects)`` of an entry exported for ``key``; raises :class:`CheckpointError` when refused."""
    stored, body = data[:SIGNATURE_BYTES], data[SIGNATURE_BYTES:]
    if len(stored) < SIGNATURE_BYTES or not hmac.compare_digest(stored, signature(ENTRY_DOMAIN, body, secret)):
        raise CheckpointError(
            f"state of key {key!r} failed its signature check: it was changed, or written with another key; refusing to load it"
        )
    if body[:LAYOUT_TAG_BYTES] != layout:
        raise CheckpointError(
            f"state of key {key!r} has an incompatible state layout (written by another otelml "
            "or with other models); refusing to load it"
        )
    stored_key, row, objects = pickle.loads(body[LAYOUT_TAG_BYTES:])
    if stored_key != key:
        raise CheckpointError(f"state exported for key {stored_key!r} was offered as key {key!r}; refusing to load it")
    return stored_key, row, objects


def dump_payload(settings: str, layout: bytes, clock: float, entries: dict[Any, bytes], parents: bytes = b"") -> bytes:
    """A checkpoint's contents: settings fingerprint, layout tag, clock, the entries of every key and the parents' payload."""
    return pickle.dumps(
        {"settings": settings, "layout": layout, "clock": clock, "entries": list(entries.items()), "parents": parents},
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def load_payload(payload: bytes) -> Payload:
    """A verified payload's contents (a payload written before parents were kept has none)."""
    content = pickle.loads(payload)
    return Payload(
        content["settings"], content["layout"], content["clock"], dict(content["entries"]), content.get("parents", b"")
    )


def refuse_earlier_format(path: Path | None) -> None:
    """Raise :class:`CheckpointError` saying so when ``path`` was written in an earlier checkpoint format.

    For a file the checkpointer refused: an earlier format is refused with
    what to do about it rather than as "not an anomaly checkpoint".
    """
    other = _ANY_MAGIC.match(path.read_bytes()) if path is not None and path.is_file() else None
    if other and int(other.group(1)) != FORMAT:
        raise CheckpointError(
            f"{path} was written by an earlier otelml in checkpoint format {int(other.group(1))}, which this "
            "version cannot read; refusing to load it (remove the file to start afresh)"
        ) from None
