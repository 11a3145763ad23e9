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
    """The destination is private, loopback or link-local and this target may not use it.

    It is the address Herald would connect to that is refused (whatever form the URL wrote).
    """


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


# IPv6 ranges that carry an IPv4 address inside them: a connection to one of these reaches
# (or may be translated to) the embedded IPv4 address, so that address is what is checked.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, RFC 4291 2.5.5.1 (:: and ::1 too)
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 / SIIT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a site's own translator


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through mapping, 6to4, NAT64 or the old compatible form."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_restricted(address: str) -> bool:
    """Private, loopback, link-local, or any other address that is not globally routable.

    IPv6 forms that embed an IPv4 address are judged by that address, so
    ``::ffff:127.0.0.1``, ``::127.0.0.1``, ``64:ff9b::a00:1`` and ``2002:a00:1::`` are all refused.
    """
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return True
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            return not embedded.is_global or embedded.is_multicast
    return not ip.is_global or ip.is_multicast


def numeric_host_problem(host: str) -> str | None:
    """Why a host written as a number in another form than dotted decimal cannot be used, or None.

    ``127.1``, ``0x7f.0.0.1``, ``2130706433`` and ``0177.0.0.1`` are IPv4 addresses to the
    resolver but not to a reader; Herald takes only the four decimal numbers.
    """
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    return f"{host} is an IPv4 address in an unusual form; write it as four decimal numbers (a.b.c.d)"


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
