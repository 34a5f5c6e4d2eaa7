"""The outbound address guard: where Pushflow may send requests.

A connection URL is a user's input, so a flow must not become a way into the
server's own network: loopback, private, link-local (cloud metadata at
169.254.169.254), multicast, reserved and unspecified addresses are refused unless
the environment variable `PUSHFLOW_OUTBOUND_ALLOW` lists the host or a CIDR range
holding the address. The check runs on every address DNS gives, and the request
is then sent to that checked address (with the original Host and TLS name), so a
name that resolves differently a moment later (DNS rebinding) changes nothing.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class OutboundRefused(Exception):
    """A URL Pushflow will not call; `reason` says why in words a person can act on."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Target:
    """A checked URL: its scheme, host name, port, and the address to connect to."""

    scheme: str
    host: str
    port: int
    address: str


def _allowed() -> tuple[set[str], list]:
    hosts, networks = set(), []
    for item in getattr(settings, "PUSHFLOW_OUTBOUND_ALLOW", []) or []:
        item = item.strip().lower()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item)
    return hosts, networks


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return not (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
                or address.is_reserved or address.is_unspecified or not address.is_global)


def check_url(url: str, resolve=socket.getaddrinfo) -> Target:
    """Resolve and check `url`; the Target says which address to connect to. Raises OutboundRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"the URL {url[:200]!r} is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused(f"only http and https URLs can be called, not {parts.scheme or 'a URL without a scheme'!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundRefused(f"the URL {url[:200]!r} has no host")
    if parts.username or parts.password:
        raise OutboundRefused("put credentials in the connection's auth settings and secrets, not in the URL")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"the host {host!r} cannot be resolved: {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise OutboundRefused(f"the host {host!r} has no address")
    allowed_hosts, allowed_networks = _allowed()
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if host in allowed_hosts or any(address in network for network in allowed_networks) or is_public(address):
            continue
        raise OutboundRefused(
            f"{host} resolves to {address}, a private, loopback or link-local address; an administrator can allow it "
            "with PUSHFLOW_OUTBOUND_ALLOW")
    return Target(parts.scheme, host, port, addresses[0])
