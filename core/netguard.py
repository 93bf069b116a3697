"""Refusing outbound requests to places a caller must not reach (SSRF protection).

Media URLs and webhook URLs are fetched by our servers. Unless the operator allows it,
they must be http(s) and resolve only to public addresses: never loopback, private,
link-local (cloud metadata lives there), multicast, reserved or unspecified ones.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class UnsafeURLError(ValueError):
    """The URL is malformed, not http(s), or points at a non-public address."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip.sixtofour and not _is_public(str(ip.sixtofour)):
            return False  # 6to4 (2002::/16) of a private IPv4 address
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


def check_url(url: str, *, allow_private: bool = False, resolve: bool = True) -> str:
    """Validate ``url``; return its host. Raises :class:`UnsafeURLError`."""
    if not isinstance(url, str) or len(url) > 2048:
        raise UnsafeURLError("URL must be a string of at most 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError("only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise UnsafeURLError("URL has no host")
    if parts.username or parts.password:
        raise UnsafeURLError("URLs with credentials are not allowed")
    if allow_private:
        return host
    if host.lower().rstrip(".") in METADATA_HOSTS:
        raise UnsafeURLError("URL points at a cloud metadata service")
    try:
        addresses = [ipaddress.ip_address(host).compressed]
    except ValueError:
        if not resolve:
            return host
        try:
            infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeURLError(f"cannot resolve host {host!r}: {exc}") from None
        addresses = [info[4][0] for info in infos]
    for address in addresses:
        if not _is_public(address):
            raise UnsafeURLError(
                f"URL resolves to a non-public address ({address}); "
                "the operator can allow this with WEBHOOK_ALLOW_PRIVATE=1 / MEDIA_ALLOW_PRIVATE=1"
            )
    return host


@dataclass(frozen=True)
class Pinned:
    """Where to send a request for a checked URL: ``url`` names the address that was
    checked (not the host name, which could resolve elsewhere a moment later), with the
    original ``Host`` header and TLS server name."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def pin(url: str, *, allow_private: bool = False) -> Pinned:
    """:func:`check_url`, resolving the host once and pinning the address it checked.

    Connecting to the address that was checked closes the gap in which a second DNS
    answer could point the request inside (DNS rebinding). Raises :class:`UnsafeURLError`.
    """
    host = check_url(url, allow_private=allow_private, resolve=False)
    if allow_private:
        return Pinned(url)
    try:
        ipaddress.ip_address(host)
        return Pinned(url)  # a literal address, already checked
    except ValueError:
        pass
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURLError(f"cannot resolve host {host!r}: {exc}") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise UnsafeURLError(f"cannot resolve host {host!r}")
    for address in addresses:  # every answer must be public, as check_url demands
        if not _is_public(address):
            raise UnsafeURLError(
                f"URL resolves to a non-public address ({address}); "
                "the operator can allow this with WEBHOOK_ALLOW_PRIVATE=1 / MEDIA_ALLOW_PRIVATE=1"
            )
    literal = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return Pinned(pinned, {"Host": parts.netloc}, extensions)
