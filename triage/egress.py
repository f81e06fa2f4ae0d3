"""Requests the service makes on an admin's say-so (webhooks): never aimed inward.

Whoever can register a webhook URL could otherwise make the service reach what
only it can reach: the cloud metadata endpoint (credentials), an admin port on
loopback, a database on the private network, a local file. So:

* only ``http`` and ``https`` URLs with a host are accepted (no ``file:``,
  ``javascript:``, ``gopher:``, no user:password@);
* the host is resolved *at delivery time*, every address it resolves to is
  checked, and the connection goes to the checked address (a DNS answer that
  changes between the check and the connect cannot slip through);
* loopback, private, link-local (which holds 169.254.169.254), carrier-grade
  NAT, multicast, reserved and unspecified addresses, and the known metadata
  addresses, are refused unless the allow-list names the host or a network
  holding the address (``TRIAGE_WEBHOOK_ALLOW``, e.g. ``127.0.0.1,10.2.0.0/16``);
* redirects are never followed: a 3xx is an answer like any other (a failure).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

from .errors import InputError

MAX_URL = 2000
# metadata services that sit on ordinary-looking addresses (the rest are link-local)
METADATA = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
}
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class Refused(InputError):
    """A URL or address the service will not send to."""

    status = 422


@dataclass(frozen=True)
class AllowList:
    """Hosts (exact names) and networks that may be reached although not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple = ()

    @classmethod
    def parse(cls, spec: str | Iterable[str] | None) -> "AllowList":
        items = spec.split(",") if isinstance(spec, str) else list(spec or [])
        hosts, nets = set(), []
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(nets))

    def allows(self, host: str, address) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(
            address in n for n in self.networks if n.version == address.version
        )


def check_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path+query)`` of an acceptable URL; :class:`Refused` otherwise."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise Refused(
            "webhook URL must be text of 1 to 2000 characters",
            column="url",
            expected="http(s)://host/path",
            got=str(url)[:80],
        )
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise Refused(
            "webhook URL must not contain spaces or control characters",
            column="url",
            expected="http(s)://host/path",
            got=url[:80],
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(
            f"webhook URL is malformed ({exc})", column="url", expected="http(s)://host/path", got=url[:80]
        ) from None
    if parts.scheme not in ("http", "https"):
        raise Refused(
            "webhook URL must use http or https",
            column="url",
            expected="http or https",
            got=parts.scheme or "(none)",
        )
    if not parts.hostname:
        raise Refused("webhook URL has no host", column="url", expected="http(s)://host/path", got=url[:80])
    if parts.username is not None or parts.password is not None:
        raise Refused(
            "webhook URL must not carry a user or password (sign with the secret)",
            column="url",
            expected="http(s)://host/path",
            got="user:password@",
        )
    port = port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.scheme, parts.hostname, port, target


def is_public(address) -> bool:
    """Globally routable and not a metadata endpoint."""
    if address in METADATA:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        # 6to4 (2002::/16) carries an IPv4 address a 6to4 tunnel on this host would reach:
        # 2002:7f00:1:: is 127.0.0.1, 2002:a9fe:a9fe:: the metadata service
        return is_public(address.sixtofour)
    if address.version == 4 and address in CGNAT:
        return False
    return address.is_global and not (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def resolve(host: str, port: int, allow: AllowList) -> str:
    """The address to connect to: every address the host has must be acceptable."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve webhook host {host!r} ({exc})", column="url") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not is_public(address) and not allow.allows(host, address):
            raise Refused(
                f"webhook host {host!r} resolves to {address}, a loopback, private, "
                f"link-local or metadata address; name it in TRIAGE_WEBHOOK_ALLOW to "
                f"permit it",
                column="url",
                expected="a public address",
                got=str(address),
            )
        addresses.append(str(address))
    if not addresses:
        raise Refused(f"webhook host {host!r} has no address", column="url")
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to a checked address while the Host header keeps the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to a checked address, certificate verified against the host name (SNI too)."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context or ssl.create_default_context())
        self._address = address
        self._ctx = context or ssl.create_default_context()

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self.host)


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float, allow: AllowList | None = None
) -> int:
    """POST once to a checked URL and address; the status code (3xx is not followed)."""
    scheme, host, port, target = check_url(url)
    address = resolve(host, port, allow or AllowList())
    cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    conn = cls(host, port, address, timeout)
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65536)  # a little of the answer; a receiver's body is not ours to keep
        return response.status
    finally:
        conn.close()
