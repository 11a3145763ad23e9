"""The client's address, believing X-Forwarded-* only from trusted proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from quart import Request


@lru_cache(maxsize=64)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    if not trusted or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(trusted))


def client_address(request: Request, trusted_proxies: list[str] | tuple[str, ...]) -> str:
    """Walk X-Forwarded-For from the right, skipping trusted proxies (RFC 7239 practice)."""
    return address_behind(request.remote_addr or "", request.headers.get("X-Forwarded-For", ""), trusted_proxies)


def address_behind(peer: str, forwarded_for: str, trusted_proxies: list[str] | tuple[str, ...]) -> str:
    """The client's address from the peer and its X-Forwarded-For header (for ASGI code without a Request)."""
    trusted = tuple(trusted_proxies)
    if not _is_trusted(peer, trusted):
        return peer
    forwarded = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _is_trusted(address, trusted):
            return address
    return forwarded[0] if forwarded else peer


def is_trusted_proxy(address: str, trusted_proxies: list[str] | tuple[str, ...]) -> bool:
    return _is_trusted(address, tuple(trusted_proxies))


def client_scheme(request: Request, trusted_proxies: list[str] | tuple[str, ...]) -> str:
    """The scheme the browser used: X-Forwarded-Proto when a trusted proxy sent it, else the
    connection's own (a client could claim https over plain http otherwise)."""
    if _is_trusted(request.remote_addr or "", tuple(trusted_proxies)):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            return proto
    return request.scheme


def https_address_for(request: Request, public_url: str, trusted_proxies: list[str] | tuple[str, ...]) -> str | None:
    """Where to go instead when a page of an https Herald was opened over plain http.

    With an https public URL Herald's cookies are Secure: a browser on plain http (a LAN
    address, ``http://herald.local``) neither keeps nor sends them, so no login or form
    can work there. None when the request came over https (or the instance is http-only).
    """
    if not public_url.startswith("https://") or client_scheme(request, trusted_proxies) == "https":
        return None
    return public_url.rstrip("/") + request.full_path.rstrip("?")
