"""Authentication settings of network components, as the collector's configauth.

A receiver or exporter names an authenticator extension
(``auth: {authenticator: bearertokenauth/ingest}``); the extension does the
work. Receivers ask a :class:`ServerAuthenticator` whether a request's
headers are acceptable; exporters ask a :class:`ClientAuthenticator` for the
headers to send. The config check refuses a reference to an extension that
is not configured or not enabled in ``service::extensions`` (through
:meth:`AuthConfig.extension_references`), so that a mistyped name can never
leave a receiver open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from pydantic import field_validator

from otelml.component import ComponentID, Host
from otelml.configmodel import ComponentConfig


class AuthConfig(ComponentConfig):
    authenticator: str

    @field_validator("authenticator")
    @classmethod
    def _check_id(cls, value: str) -> str:
        ComponentID.parse(value)
        return value

    @property
    def id(self) -> ComponentID:
        return ComponentID.parse(self.authenticator)

    def extension_references(self) -> list[tuple[str, str]]:
        return [("authenticator", self.authenticator)]


@runtime_checkable
class ServerAuthenticator(Protocol):
    def authenticate(self, headers: Mapping[str, str]) -> bool:
        """Whether a request carrying ``headers`` (lower-case names) may go on."""


@runtime_checkable
class ClientAuthenticator(Protocol):
    def headers(self) -> dict[str, str]:
        """Headers that authenticate an outgoing request, read anew for each request."""


def server_authenticator(host: Host, auth: AuthConfig | None) -> ServerAuthenticator | None:
    """The extension ``auth`` names, as a server authenticator; None when ``auth`` is unset."""
    return _resolve(host, auth, ServerAuthenticator, "authenticate requests")


def client_authenticator(host: Host, auth: AuthConfig | None) -> ClientAuthenticator | None:
    """The extension ``auth`` names, as a client authenticator; None when ``auth`` is unset."""
    return _resolve(host, auth, ClientAuthenticator, "add credentials to requests")


def _resolve(host: Host, auth: AuthConfig | None, role: type, purpose: str) -> Any:
    if auth is None:
        return None
    extension = host.get_extension(auth.id)
    if extension is None:
        raise ValueError(f'authenticator "{auth.id}" is not an enabled extension')
    if not isinstance(extension, role):
        raise ValueError(f'extension "{auth.id}" cannot {purpose}')
    return extension
