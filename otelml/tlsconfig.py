"""TLS settings shared by network components, named as the collector's configtls.

:class:`ClientTLSConfig` secures outgoing connections, :class:`ServerTLSConfig`
listening ones. A server with ``reload_interval`` reads its certificate, key
and client CAs again when the files change, so that certificates can be
rotated without a restart: the files are looked at when a client connects,
at most once per interval, and connections already open keep the
certificate they started with.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Literal, TypeVar

import grpc

from otelml.configmodel import ComponentConfig, Duration

TLSVersion = Literal["1.0", "1.1", "1.2", "1.3"]
_SSL_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class ClientTLSConfig(ComponentConfig):
    """TLS of an outgoing connection. ``insecure: true`` means plain text (gRPC exporters)."""

    insecure: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    server_name_override: str | None = None

    def validate_config(self) -> list[str]:
        problems = []
        if bool(self.cert_file) != bool(self.key_file):
            problems.append("cert_file: cert_file and key_file must be set together")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                problems.append(f"{name}: cannot read {path}")
        return problems

    def grpc_problems(self) -> list[str]:
        """Settings gRPC cannot honour, for the configs of gRPC clients to report."""
        if self.insecure_skip_verify and not self.insecure:
            return ["insecure_skip_verify: gRPC cannot skip verifying the server; set ca_file to the CA that signed it"]
        return []

    def grpc_credentials(self) -> grpc.ChannelCredentials | None:
        """Channel credentials, or None for a plain-text channel."""
        if self.insecure:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )

    def grpc_options(self) -> list[tuple[str, str]]:
        if self.server_name_override and not self.insecure:
            return [("grpc.ssl_target_name_override", self.server_name_override)]
        return []

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class ServerTLSConfig(ComponentConfig):
    """TLS of a listening server; ``client_ca_file`` turns on mutual TLS.

    ``min_version``/``max_version`` bound the protocol versions of HTTP
    servers. gRPC servers always speak TLS 1.2 or 1.3 and cannot be
    narrowed further (see :meth:`grpc_problems`).
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    min_version: TLSVersion = "1.2"
    max_version: TLSVersion | None = None
    reload_interval: Duration = 0.0

    def validate_config(self) -> list[str]:
        problems = [
            f"{name}: cannot read {path}"
            for name in ("cert_file", "key_file", "client_ca_file")
            if (path := getattr(self, name)) and not Path(path).is_file()
        ]
        if self.max_version and _SSL_VERSIONS[self.max_version] < _SSL_VERSIONS[self.min_version]:
            problems.append(f"max_version: {self.max_version} is below min_version {self.min_version}")
        if self.reload_interval < 0:
            problems.append("reload_interval: must not be negative")
        if not problems:
            # Load once now, so that a key that does not match its
            # certificate is a config error rather than a failed start.
            try:
                self._load_ssl_context()
            except (OSError, ssl.SSLError) as error:
                problems.append(
                    f"cert_file: cannot use {self.cert_file} with {self.key_file}"
                    f"{' and ' + self.client_ca_file if self.client_ca_file else ''}: {error}"
                )
        return problems

    def grpc_problems(self) -> list[str]:
        """Version bounds a gRPC server cannot enforce, for gRPC server configs to report."""
        problems = []
        if self.min_version == "1.3":
            problems.append("min_version: gRPC servers cannot require TLS 1.3; use 1.2")
        if self.max_version not in (None, "1.3"):
            problems.append("max_version: gRPC servers always allow TLS 1.3; leave max_version unset")
        return problems

    def ssl_context(self, logger: logging.Logger | logging.LoggerAdapter) -> ssl.SSLContext:
        """A server context; with ``reload_interval`` each new connection gets the newest certificate."""
        files = _ReloadingFiles(self, logger, ServerTLSConfig._load_ssl_context)
        first = files.current
        if self.reload_interval > 0:
            # Called for every handshake (with server_name None when the
            # client sent no SNI): the connection switches to the newest context.
            def use_newest(ssl_object: ssl.SSLObject, _server_name, _context) -> None:
                files.refresh()
                if files.current is not first:
                    ssl_object.context = files.current

            first.sni_callback = use_newest
        return first

    def grpc_credentials(self, logger: logging.Logger | logging.LoggerAdapter) -> grpc.ServerCredentials:
        """Server credentials; with ``reload_interval`` gRPC asks for the newest certificate at each connection."""
        require_client_certificate = self.client_ca_file is not None
        if self.reload_interval <= 0:
            return grpc.ssl_server_credentials(
                [(_read(self.key_file), _read(self.cert_file))],
                root_certificates=_read(self.client_ca_file),
                require_client_auth=require_client_certificate,
            )
        files = _ReloadingFiles(self, logger, ServerTLSConfig._load_grpc_configuration)
        return grpc.dynamic_ssl_server_credentials(
            files.current, files.refresh, require_client_authentication=require_client_certificate
        )

    def _load_ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _SSL_VERSIONS[self.min_version]
        if self.max_version:
            context.maximum_version = _SSL_VERSIONS[self.max_version]
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            context.load_verify_locations(cafile=self.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _load_grpc_configuration(self):
        # gRPC reports unusable material only in its own logs; loading it
        # into an SSL context first turns that into an error we can log.
        self._load_ssl_context()
        return grpc.ssl_server_certificate_configuration(
            [(_read(self.key_file), _read(self.cert_file))], root_certificates=_read(self.client_ca_file)
        )


Loaded = TypeVar("Loaded")


class _ReloadingFiles(Generic[Loaded]):
    """What ``load`` made of a server's TLS files, made again when the files change.

    ``refresh`` looks at the files at most once per ``reload_interval``;
    material that cannot be loaded is logged and the previous one kept.
    """

    def __init__(self, config: ServerTLSConfig, logger, load: Callable[[ServerTLSConfig], Loaded]):
        self.config = config
        self.logger = logger
        self.load = load
        self._stamp = self._file_stamp()
        self.current: Loaded = load(config)
        self._next_check = time.monotonic() + config.reload_interval

    def refresh(self) -> Loaded | None:
        """The newly loaded material when the files changed and could be loaded, else None."""
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self.config.reload_interval
        try:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return None
            loaded = self.load(self.config)
        except (OSError, ssl.SSLError) as error:
            self.logger.error("cannot reload the TLS certificate, keeping the current one: %s", error)
            return None
        self._stamp, self.current = stamp, loaded
        self.logger.info("reloaded the TLS certificate from %s", self.config.cert_file)
        return loaded

    def _file_stamp(self) -> tuple:
        # Inode too: certificates are usually replaced by renaming a new file over the old.
        paths = (self.config.cert_file, self.config.key_file, self.config.client_ca_file)
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in (os.stat(p) for p in paths if p))


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None
