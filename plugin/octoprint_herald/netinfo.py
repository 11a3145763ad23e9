"""The printer's local IP address, as Herald's App Connections report it to apps (for local discovery)."""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urlsplit

# A TEST-NET-1 address (RFC 5737): connecting a UDP socket sends nothing, it only picks a route.
_ANY_ROUTE = "192.0.2.1"
_CACHE_SECONDS = 60.0


def _address_towards(host: str) -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            address = probe.getsockname()[0]
    except OSError:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return None if ip.is_loopback or ip.is_unspecified or ip.is_link_local else address


class LocalAddress:
    """The IPv4 address this machine uses towards Herald (else its default route), cached a minute."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._value: str | None = None
        self._at: float | None = None
        self._for: str | None = None

    def get(self, herald_url: str) -> str | None:
        now = self._clock()
        if self._at is not None and self._for == herald_url and now - self._at < _CACHE_SECONDS:
            return self._value
        host = urlsplit(herald_url or "").hostname or ""
        value = None
        if host:
            try:
                value = _address_towards(socket.gethostbyname(host))
            except OSError:
                value = None
        self._value = value or _address_towards(_ANY_ROUTE)
        self._at, self._for = now, herald_url
        return self._value
