"""Checkpoint files of learned state: signed, written atomically, claimed by one component.

A checkpoint is ``magic + HMAC-SHA256(key, magic + payload) + payload``.
Its payload is only handed back once the signature checks out, so a file
changed or written by anyone without the key is refused with
:class:`CheckpointError` (and a payload that is unpickled can never run code
an attacker chose). Files are written to a temporary name, synced and then
renamed, so a crash leaves either the old checkpoint or the new one, and
are readable by their owner only.

:class:`Checkpointer` does what a stateful component needs around that:
claim its path (two components must never share one), load at start, save
every ``interval`` in a worker thread and once more at shutdown.

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "state"
>>> write_signed(path, b"EXAMPLE/1\\n", b"learned", b"0123456789abcdef")
>>> read_signed(path, b"EXAMPLE/1\\n", b"0123456789abcdef")
b'learned'
>>> read_signed(path, b"EXAMPLE/1\\n", b"another-key-0123")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
otelml.checkpoint.CheckpointError: ... failed its signature check: it was changed, or written with another key; ...
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from otelml.configmodel import ComponentConfig, Duration

KEY_ENV = "OTELML_CHECKPOINT_KEY"
MIN_KEY_LENGTH = 16
SIGNATURE_BYTES = hashlib.sha256().digest_size

# Checkpoint paths claimed by running components, whatever their type.
_CLAIMED_PATHS: set[Path] = set()


class CheckpointConfig(ComponentConfig):
    """Where a component keeps its checkpoint, how often it writes it, and the key that signs it."""

    path: str | None = None
    interval: Duration = 60.0
    key: SecretStr | None = None

    def validate_config(self) -> list[str]:
        problems: list[str] = []
        if self.path is None:
            return problems
        if Path(self.path).is_dir():
            problems.append(f"path: {self.path} is a directory: name a file (in it or elsewhere)")
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


class CheckpointError(Exception):
    """A checkpoint exists but may not be loaded."""


def signature(domain: bytes, data: bytes, key: bytes) -> bytes:
    """HMAC-SHA256 of ``domain + data``: the domain (a file's magic) keeps signatures of one kind from passing for another."""
    return hmac.new(key, domain + data, hashlib.sha256).digest()


def write_signed(path: Path, magic: bytes, payload: bytes, key: bytes) -> None:
    """Write ``payload`` signed, atomically (temporary file, then rename), readable by the owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(magic + signature(magic, payload, key) + payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_signed(path: Path, magic: bytes, key: bytes, what: str = "a checkpoint of this kind") -> bytes | None:
    """The verified payload of ``path``, or None when there is no checkpoint yet.

    ``what`` names the expected kind in the refusal of a file that is not one
    (``"an anomaly checkpoint"``).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data.startswith(magic) or len(data) < len(magic) + SIGNATURE_BYTES:
        raise CheckpointError(f"{path} is not {what}; refusing to load it")
    stored = data[len(magic) : len(magic) + SIGNATURE_BYTES]
    payload = data[len(magic) + SIGNATURE_BYTES :]
    if not hmac.compare_digest(stored, signature(magic, payload, key)):
        raise CheckpointError(
            f"{path} failed its signature check: it was changed, or written with another key; "
            "refusing to load it (restore the right key, or remove the file to start afresh)"
        )
    return payload


class Checkpointer:
    """A component's checkpoint: claimed at load, saved every interval and at stop.

    Parameters
    ----------
    config
        The component's ``checkpoint`` settings; nothing happens without a ``path``.
    magic
        The first bytes of the file: its kind and format version.
    what
        The kind, for messages: ``"a drain checkpoint"``.
    logger
        The component's logger, for failed periodic writes.
    """

    def __init__(self, config: CheckpointConfig, magic: bytes, what: str, logger: logging.LoggerAdapter | logging.Logger):
        self.config = config
        self.magic = magic
        self.what = what
        self.logger = logger
        self.path = Path(config.path) if config.path else None
        self._task: asyncio.Task | None = None
        self._claimed: Path | None = None

    def load(self) -> bytes | None:
        """Claim the path and return the verified payload (None without a path or a file yet).

        The path's folder is created (owner only) when missing, so that the first save can succeed.
        """
        if self.path is None:
            return None
        resolved = self.path.resolve()
        if resolved in _CLAIMED_PATHS:
            raise ValueError(f"checkpoint path {resolved} is already used by another component; give each its own")
        payload = read_signed(self.path, self.magic, self._key(), self.what)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _CLAIMED_PATHS.add(resolved)
        self._claimed = resolved
        return payload

    def start(self, dump: Callable[[], bytes]) -> None:
        """Save ``dump()`` every interval, writing in a worker thread."""
        if self._claimed is not None:
            self._task = asyncio.create_task(self._save_every_interval(dump))

    async def stop(self, dump: Callable[[], bytes]) -> None:
        """Stop the periodic saves, save ``dump()`` once more and release the path."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._claimed is None:
            return
        try:
            self.save(dump())
        finally:
            _CLAIMED_PATHS.discard(self._claimed)
            self._claimed = None

    def save(self, payload: bytes) -> None:
        assert self.path is not None, "saving needs a path"
        write_signed(self.path, self.magic, payload, self._key())

    def _key(self) -> bytes:
        key = self.config.signing_key()
        assert key is not None, "validate_config requires a key with a path"
        return key

    async def _save_every_interval(self, dump: Callable[[], bytes]) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            payload = dump()
            try:
                await asyncio.to_thread(self.save, payload)
            except OSError as error:
                self.logger.error("cannot write checkpoint %s: %s", self.path, error)
