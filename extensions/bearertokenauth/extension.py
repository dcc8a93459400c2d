"""The ``bearertokenauth`` extension: a shared token that receivers demand and exporters send.

Receivers accept a request only when its ``header`` holds exactly
``<scheme> <token>``; the comparison takes the same time whatever the
received value, so that a client cannot learn the token one byte at a time.
Exporters send the same header. With ``filename`` the token is the file's
content (surrounding whitespace removed), read again whenever the file
changes, so that tokens can be rotated without a restart.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from otelml.component import Component, CreateSettings, Host
from otelml.extensions.bearertokenauth.config import BearerTokenAuthConfig


class BearerTokenAuth(Component):
    def __init__(self, settings: CreateSettings, config: BearerTokenAuthConfig):
        self.config = config
        self.logger = settings.logger
        self._token = config.token.get_secret_value().strip() if config.token is not None else ""
        self._stamp: tuple | None = None
        self._file_unreadable = False
        self._filename = config.filename or ""  # read only when set

    async def start(self, host: Host) -> None:
        if self.config.filename is not None:
            self._read_file(os.stat(self.config.filename))

    def authenticate(self, headers: Mapping[str, str]) -> bool:
        """Whether ``headers`` carry the expected credentials (header names lower-case)."""
        expected = self._credentials()
        received = headers.get(self.config.header)
        if received is None or not self._token:
            return False
        return hmac.compare_digest(received.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))

    def headers(self) -> dict[str, str]:
        """The header an exporter sends."""
        return {self.config.header: self._credentials()}

    def _credentials(self) -> str:
        if self.config.filename is not None:
            self._reread_if_changed()
        return f"{self.config.scheme} {self._token}" if self.config.scheme else self._token

    def _reread_if_changed(self) -> None:
        try:
            status = os.stat(self._filename)
            if (status.st_ino, status.st_mtime_ns, status.st_size) != self._stamp:
                self._read_file(status)
        except OSError as error:
            # Once per outage, not once per request.
            if not self._file_unreadable:
                self.logger.warning("cannot read the token file, keeping the last token: %s", error.strerror)
                self._file_unreadable = True
            return
        self._file_unreadable = False

    def _read_file(self, status: os.stat_result) -> None:
        self._token = Path(self._filename).read_text().strip()
        self._stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
        if self._token:
            self.logger.info("read the token from %s", self.config.filename)
        else:
            self.logger.warning("the token file %s is empty: every request will be refused", self.config.filename)
