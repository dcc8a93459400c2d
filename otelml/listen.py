"""Why a server cannot listen on its endpoint, said in one line.

aiohttp reports a taken port with the address as a Python tuple, gRPC only
as "Failed to bind" (plus a line of its own on stderr); both are turned into
``cannot listen on HOST:PORT: <reason>`` here, which the service prints as
the one line of a failed start.
"""

from __future__ import annotations

import errno
import os
import socket

from otelml.configmodel import parse_endpoint


class CannotListen(OSError):
    """A server cannot listen on its endpoint; ``str()`` is the one line to print."""

    def __str__(self) -> str:
        return self.strerror or ""


def cannot_listen(endpoint: str, error: OSError) -> CannotListen:
    """The error a server raises when it cannot listen on ``endpoint``, for ``error``.

    >>> print(cannot_listen("127.0.0.1:4317", OSError(errno.EADDRINUSE, "error while binding ('127.0.0.1', 4317)")))
    cannot listen on 127.0.0.1:4317: address already in use
    """
    return _cannot_listen(endpoint, error.errno, os.strerror(error.errno) if error.errno else str(error))


def _cannot_listen(endpoint: str, number: int | None, reason: str) -> CannotListen:
    return CannotListen(number, f"cannot listen on {endpoint}: {reason[:1].lower()}{reason[1:]}")


def check_can_listen(endpoint: str) -> None:
    """Raise :func:`cannot_listen` when ``endpoint``'s port is taken, or none of its host's addresses is local.

    For servers (gRPC) that do not say why they could not bind. Port 0 (any
    free port) is always possible.
    """
    host, port = parse_endpoint(endpoint)
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise _cannot_listen(endpoint, errno.EADDRNOTAVAIL, error.strerror or str(error)) from None
    failures = []
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            # As servers bind: a port whose old connections linger in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise cannot_listen(endpoint, error) from None
                failures.append(error)
    # A name may resolve to addresses this host lacks (::1 without IPv6); one that works is enough.
    if failures and len(failures) == len(addresses):
        raise cannot_listen(endpoint, failures[0])


def endpoints_clash(first: str, second: str) -> bool:
    """Whether servers on ``first`` and ``second`` would want the same port of the same address.

    An IPv4 wildcard takes the port on every IPv4 address, ``::`` on every
    address (Linux binds it dual-stack), ``localhost`` on 127.0.0.1 and ::1.
    Port 0 (any free port) never clashes.

    >>> endpoints_clash("localhost:4317", "127.0.0.1:4317"), endpoints_clash(":4317", "10.0.0.5:4317")
    (True, True)
    >>> endpoints_clash("127.0.0.1:4317", "127.0.0.1:4318"), endpoints_clash("0.0.0.0:4317", "[::1]:4317")
    (False, False)
    """
    (first_host, first_port), (second_host, second_port) = parse_endpoint(first), parse_endpoint(second)
    if first_port != second_port or first_port == 0:
        return False
    first_addresses, second_addresses = _addresses(first_host), _addresses(second_host)
    return bool(first_addresses & second_addresses) or any(
        "::" in wildcard or ("0.0.0.0" in wildcard and any(":" not in address for address in other))
        for wildcard, other in ((first_addresses, second_addresses), (second_addresses, first_addresses))
    )


def _addresses(host: str) -> set[str]:
    return {"127.0.0.1", "::1"} if host == "localhost" else {host}
