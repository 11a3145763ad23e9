"""Bounding what one client can hold open while it sends a request body.

hypercorn's ``read_timeout`` closes a connection that sends nothing for a while,
but a client that trickles one byte every few seconds never trips it. This ASGI
wrapper gives every request body a deadline (``HERALD_REQUEST_BODY_SECONDS``,
counted from the request's start) and lets one client address have only
``HERALD_UPLOADS_PER_CLIENT`` bodies unfinished at once. A body past its deadline
is answered 408 and its connection closed (the body was never read to its end,
so hypercorn cannot keep the connection); a request over the per-client count is
answered 429 at once, before its body is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value
    return None


def _expects_body(scope: Scope) -> bool:
    if _header(scope, b"transfer-encoding") is not None:
        return True
    length = _header(scope, b"content-length")
    if length is None:
        # HTTP/1.1 without a length or chunking has no body; HTTP/2 may send one without a length.
        return scope.get("http_version") == "2" and scope.get("method") in ("POST", "PUT", "PATCH")
    try:
        return int(length) > 0
    except ValueError:
        return True


class SlowBodyGuard:
    """ASGI middleware: a deadline per request body and a cap on unfinished bodies per client."""

    def __init__(self, app: ASGIApp, *, seconds: float, per_client: int,
                 trusted_proxies: tuple[str, ...] = ()) -> None:
        self.app = app
        self.seconds = seconds
        self.per_client = per_client
        self.trusted = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
        self.open_bodies: Counter[str] = Counter()

    def client_of(self, scope: Scope) -> str:
        peer = (scope.get("client") or ("", 0))[0] or ""
        try:
            trusted = any(ipaddress.ip_address(peer) in net for net in self.trusted)
        except ValueError:
            trusted = False
        if trusted:
            forwarded = (_header(scope, b"x-forwarded-for") or b"").decode("latin-1").split(",")
            for address in reversed([a.strip() for a in forwarded if a.strip()]):
                try:
                    if not any(ipaddress.ip_address(address) in net for net in self.trusted):
                        return address
                except ValueError:
                    return address
        return peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _expects_body(scope):
            await self.app(scope, receive, send)
            return
        client = self.client_of(scope)
        if self.open_bodies[client] >= self.per_client:
            await _answer(send, 429, "Too many unfinished request bodies from this address; "
                                     "finish or close the others first.", {"retry-after": "10"})
            return
        self.open_bodies[client] += 1
        counted = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        finished = False
        timed_out = False
        started = False

        def uncount() -> None:
            nonlocal counted
            if counted:
                counted = False
                self.open_bodies[client] -= 1
                if self.open_bodies[client] <= 0:
                    del self.open_bodies[client]

        async def guarded_receive() -> Message:
            nonlocal finished, timed_out
            if finished or timed_out:
                return await receive() if finished else {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                timed_out = True
                uncount()
                return {"type": "http.disconnect"}  # the app stops; this wrapper answers 408
            if message["type"] != "http.request" or not message.get("more_body", False):
                finished = True
                uncount()
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, watched_send)
        finally:
            uncount()
        if timed_out and not started:
            await _answer(send, 408, f"The request body did not arrive within {self.seconds:g} seconds.",
                          {"connection": "close"})


async def _answer(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    code = "request_timeout" if status == 408 else "rate_limited"
    body = json.dumps({"error": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers.items())]})
    await send({"type": "http.response.body", "body": body})
