"""Outbound webhook requests: URL rules and the address check made on the address connected to.

A hostname is resolved here, every address is checked, and the request goes to
that IP address (with the Host header and TLS server name of the original
host), so a DNS answer that changes between check and connect (rebinding)
cannot reach an address the check refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

RESPONSE_KEEP = 1024  # bytes of a response kept in the attempt log


class BlockedAddress(Exception):
    """The destination is private, loopback or link-local and this target may not use it."""


def url_problem(url: str) -> str | None:
    """Why a URL cannot be a webhook destination, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "the URL must not contain a user name or password (use a header)"
    if port == 0:
        return "the URL has an invalid port"
    return None


def is_restricted(address: str) -> bool:
    """Private, loopback, link-local, or any other address that is not globally routable."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for host, after checking every address it resolves to."""
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from None
        # getaddrinfo gives IPv4/IPv6 socket addresses here, whose first item is the text.
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OSError(f"cannot resolve {host}")
    if not allow_private:
        for address in addresses:
            if is_restricted(address):
                raise BlockedAddress(
                    f"{host} resolves to {address}, a private, loopback or link-local address; "
                    "only an admin's webhooks (or all, when an admin allows it) may use those")
    return addresses[0]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str  # the first RESPONSE_KEEP bytes, decoded
    body: bytes  # the whole body, read up to 64 KiB (OAuth responses are parsed from it)


async def send(session: aiohttp.ClientSession, *, method: str, url: str, headers: dict[str, str],
               data: bytes | None, timeout: float, allow_private: bool) -> Answer:
    """One request to the checked address; redirects are never followed."""
    target = URL(url)
    host = target.raw_host or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    address = await resolve_checked(host, port, allow_private=allow_private)
    connect_url = target.with_host(address)
    headers = dict(headers)
    host_header = host if ":" not in host else f"[{host}]"
    if not target.is_default_port():
        host_header += f":{target.port}"
    headers["Host"] = host_header
    # None (aiohttp's default) for plain HTTP; for HTTPS, TLS checks the name, not the address.
    server_hostname = host if target.scheme == "https" else None
    async with session.request(
        method, connect_url, headers=headers, data=data, allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=timeout), server_hostname=server_hostname,
    ) as response:
        body = await response.content.read(64 * 1024)
        return Answer(
            status=response.status,
            headers={k: v for k, v in response.headers.items()},
            text=body[:RESPONSE_KEEP].decode("utf-8", errors="replace"),
            body=body,
        )
