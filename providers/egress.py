"""Where an outbound HTTP call from the bot may go.

A URL in roles.yaml decides where grant events (who gets what, and a signature) are sent.
Plain ``http`` would carry them unencrypted, and a loopback, link-local or cloud metadata
address would point the bot at itself or at the instance's credentials endpoint. Both are
refused unless the target opts in with ``allow_insecure: true``: once when the config is
validated (``url_problem``), and again at every connection (``guarded_opener``,
``guarded_connection``), against
the very address connected to, so a name that resolves somewhere else later (DNS
rebinding) is refused too.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import urlsplit

Resolve = Callable[[str, int], Sequence[str]]
"""(host, port) → the addresses to connect to, as ``socket.getaddrinfo`` finds them."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_NAMES = frozenset({"metadata.google.internal"})
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OCI
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("168.63.129.16"),  # Azure WireServer
        ipaddress.ip_address("192.0.0.192"),  # OCI's legacy metadata address
    }
)


class UnsafeAddress(OSError):
    """A connection was refused because of where it would go. An OSError, so urllib
    reports it like any other failure to connect (as the ``reason`` of a URLError)."""


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: str) -> str | None:
    """Why connecting to this IP address is refused, or None."""
    try:
        ip: IpAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop a zone id
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address, which reaches this host"
    return None


def host_problem(host: str) -> str | None:
    """Why a URL's host is refused from its spelling alone, or None (names are checked
    again, once resolved, when connecting)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "a loopback name"
    if name in _METADATA_NAMES:
        return "a cloud metadata name"
    literal = _literal_address(name)
    return address_problem(literal) if literal is not None else None


def url_problem(url: str) -> str | None:
    """Why a target without ``allow_insecure`` may not use this URL, or None."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "uses plain http, so grant events would travel unencrypted"
    problem = host_problem(parts.hostname or "")
    return f"points at {parts.hostname}, {problem}" if problem else None


def guarded_opener(
    resolve: Resolve, *handlers: urllib.request.BaseHandler
) -> urllib.request.OpenerDirector:
    """A urllib opener whose connections only reach addresses ``address_problem`` allows."""
    return urllib.request.build_opener(
        _GuardedHTTPHandler(resolve), _GuardedHTTPSHandler(resolve), *handlers
    )


def guarded_connection(
    resolve: Resolve,
    scheme: str,
    host: str,
    port: int | None,
    *,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> http.client.HTTPConnection:
    """An http.client connection (not yet connected) that, whenever it connects, only
    reaches addresses ``address_problem`` allows; once connected it stays bound to the
    address it was vetted for."""
    if scheme == "https":
        return _GuardedHTTPSConnection(
            host, port, timeout=timeout, context=context, resolve=resolve
        )
    return _GuardedHTTPConnection(host, port, timeout=timeout, resolve=resolve)


def _literal_address(name: str) -> str | None:
    """The address a host written as a number stands for: 127.0.0.1, and also the forms
    the C resolver accepts (2130706433, 0x7f.1, 127.1)."""
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(name))
    except OSError:
        return None


def _vetted(resolve: Resolve, host: str, port: int) -> list[str]:
    addresses = list(resolve(host, port))
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            # One bad answer is enough: a rebinding name mixes them.
            raise UnsafeAddress(
                f"{host} resolves to {address}, {problem}; refused (set allow_insecure: true "
                "on the target if that is really meant)"
            )
    return addresses


class _VettedConnect:
    """Mixed into http.client's connections: connect only to vetted addresses."""

    _tunnel_host: str | None
    _tunnel_port: int | None

    def __init__(self, *args: Any, resolve: Resolve, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resolve = resolve
        self._create_connection = self._connect

    def _connect(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        if self._tunnel_host:
            # Through an operator's proxy: the proxy connects to the target, so vet the
            # target's name here and leave the proxy's own address to the operator.
            _vetted(self._resolve, self._tunnel_host, self._tunnel_port or 443)
            return socket.create_connection(address, timeout, source_address)
        error: OSError | None = None
        for resolved in _vetted(self._resolve, host, port):
            try:
                return socket.create_connection((resolved, port), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error if error is not None else OSError(f"{host}: nothing to connect to")


class _GuardedHTTPConnection(_VettedConnect, http.client.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_VettedConnect, http.client.HTTPSConnection):
    pass


class _Guarded:
    """A urllib handler whose connections vet every address they connect to: the
    handler's own connection class (``_connection``) is swapped for the guarded one."""

    _connection: type[_VettedConnect]

    def __init__(self, resolve: Resolve) -> None:
        super().__init__()
        self._resolve = resolve

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        connection: Any = partial(self._connection, resolve=self._resolve)
        return super().do_open(connection, req, **kwargs)  # type: ignore[misc]


class _GuardedHTTPHandler(_Guarded, urllib.request.HTTPHandler):
    _connection = _GuardedHTTPConnection


class _GuardedHTTPSHandler(_Guarded, urllib.request.HTTPSHandler):
    _connection = _GuardedHTTPSConnection
