"""One ASGI request or WebSocket through a printer's tunnel, streamed both ways.

Nothing here holds a whole body: the app's upload is read from ASGI only as fast as the
plugin grants credit, and the response is written to the app as it comes, credit going
back as each chunk is accepted by the app's connection. Who may do this, and with which
headers, is decided by the caller (``gateway.py`` for App Connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from appliance.apps.relay_limits import RelayLimits
from appliance.relay.framing import DATA, WS_BINARY, WS_TEXT
from appliance.relay.pacing import Activity
from appliance.relay.registry import TunnelRegistry
from appliance.relay.tunnel import Head, Stream, StreamReset, Tunnel

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]

# Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), both ways.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
# A WebSocket handshake's own headers: the plugin makes its own handshake with OctoPrint.
_WS_HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                           "sec-websocket-accept", "sec-websocket-protocol"})
HEAD_TIMEOUT = 60.0
CLOSE_GRACE = 5.0  # seconds a closed app WebSocket waits for OctoPrint's side to close  # seconds to wait for OctoPrint's status line, after the request body


class RelayFailed(Exception):
    """The request could not be relayed and no response was started: the caller answers (502)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where and how one request goes through the tunnel."""

    tunnel: Tunnel
    url: str  # path and query as OctoPrint should see them
    headers: list[tuple[str, str]]  # already cleaned and with the X-Forwarded-* the caller wants
    connection_id: str | None = None
    limits: RelayLimits | None = None  # the connection's (None: none, e.g. in-process tools)


def forwardable(headers: list[tuple[str, str]], *, websocket: bool = False) -> list[tuple[str, str]]:
    """Headers without the hop-by-hop ones (and those a Connection header names)."""
    named = {part.strip().lower() for name, value in headers if name.lower() == "connection"
             for part in value.split(",")}
    skip = HOP_BY_HOP | named | (_WS_HANDSHAKE if websocket else frozenset())
    return [(name, value) for name, value in headers if name.lower() not in skip]


def _expects_body(scope: Scope) -> bool:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _head_of(stream: Stream) -> Head:
    """OctoPrint's status line and headers, or RelayFailed."""
    try:
        return await asyncio.wait_for(stream.head(), HEAD_TIMEOUT)
    except StreamReset as exc:
        raise RelayFailed(exc.error, exc.message) from None
    except TimeoutError:
        await stream.reset("cancelled", "OctoPrint did not answer in time")
        raise RelayFailed("timeout", f"OctoPrint did not answer within {HEAD_TIMEOUT:g} s") from None


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _finish(registry: TunnelRegistry, stream: Stream | None) -> None:
    if stream is None:
        return
    if stream.reset_by is None and not (stream.local_ended and stream.remote_ended):
        await stream.reset("cancelled", "the app went away")
    await registry.stream_closed(stream)


async def forward_http(registry: TunnelRegistry, target: Target, scope: Scope, receive, send) -> None:
    """Relay one HTTP request; raises RelayFailed when no response could be started."""
    has_body = _expects_body(scope)
    url = target.url
    try:
        stream = await target.tunnel.open_stream("http", method=scope["method"], url=url, headers=target.headers,
                                                 body=has_body, connection_id=target.connection_id)
    except StreamReset as exc:
        raise RelayFailed(exc.error, exc.message) from None
    registry.track(stream)
    gone = asyncio.Event()  # the app disconnected
    limits = target.limits
    up, down = registry.paces(target.connection_id, limits)
    activity = Activity()
    watchdog = asyncio.create_task(activity.watch(stream, limits.idle_seconds)) if limits else None
    sent = 0

    async def upload() -> None:
        nonlocal sent
        try:
            while has_body:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    await stream.reset("cancelled", "the app went away during the upload")
                    return
                body = message.get("body", b"")
                if body:
                    sent += len(body)
                    if limits is not None and sent > limits.max_body:
                        await stream.reset("too_large", f"the request body is over {limits.max_body} bytes "
                                           "(HERALD_RELAY_MAX_BODY)")
                        return
                    await up.take(len(body))
                    activity.touch()
                    await stream.send_data(DATA, body)
                if not message.get("more_body", False):
                    await stream.send_end()
                    break
            while True:  # the body is sent: now only a disconnect can come
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    await stream.reset("cancelled", "the app went away")
                    return
        except StreamReset:
            return

    pump = asyncio.create_task(upload())
    started = False
    try:
        head = await _head_of(stream)
        await send({"type": "http.response.start", "status": head.status,
                    "headers": _encoded(forwardable(head.headers))})
        started = True
        while True:
            try:
                item = await stream.receive()
            except StreamReset:
                break  # the response is cut short: the app sees the connection end early
            if item is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                break
            _, payload = item
            await down.take(len(payload))
            activity.touch()
            await send({"type": "http.response.body", "body": payload, "more_body": True})
            await stream.consumed(len(payload))
            if gone.is_set():
                break
    finally:
        await _stop(pump)
        if watchdog is not None:
            await _stop(watchdog)
        await _finish(registry, stream)
    if not started:  # pragma: no cover - every path above either started or raised
        raise RelayFailed("upstream_error", "no response")


async def forward_websocket(registry: TunnelRegistry, target: Target, scope: Scope, receive, send) -> Any:
    """Relay one WebSocket (the ASGI ``websocket.connect`` was already received).

    Raises RelayFailed when OctoPrint could not be reached; returns the Head when OctoPrint
    refused the handshake (the caller answers with its status).
    """
    subprotocols = list(scope.get("subprotocols") or [])
    try:
        stream = await target.tunnel.open_stream("websocket", method="GET", url=target.url,
                                                 headers=forwardable(target.headers, websocket=True), body=True,
                                                 connection_id=target.connection_id, subprotocols=subprotocols)
    except StreamReset as exc:
        raise RelayFailed(exc.error, exc.message) from None
    registry.track(stream)
    limits = target.limits
    up, down = registry.paces(target.connection_id, limits)
    activity = Activity()
    watchdog = asyncio.create_task(activity.watch(stream, limits.idle_seconds)) if limits else None
    try:
        head = await _head_of(stream)
        if head.status != 101:
            return head
        chosen = next((v for k, v in head.headers if k.lower() == "sec-websocket-protocol"), None)
        await send({"type": "websocket.accept", "subprotocol": chosen})

        async def upstream() -> None:
            try:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        await stream.send_end(code=message.get("code", 1000))
                        await asyncio.sleep(CLOSE_GRACE)  # for the plugin's own end; then cut
                        await stream.reset("cancelled", "the app closed the WebSocket")
                        return
                    if message["type"] != "websocket.receive":
                        continue
                    activity.touch()
                    if message.get("text") is not None:
                        data = message["text"].encode()
                        await up.take(len(data))
                        await stream.send_data(WS_TEXT, data)
                    elif message.get("bytes") is not None:
                        await up.take(len(message["bytes"]))
                        await stream.send_data(WS_BINARY, message["bytes"])
            except StreamReset:
                return

        pump = asyncio.create_task(upstream())
        try:
            while True:
                try:
                    item = await stream.receive()
                except StreamReset as exc:
                    await send({"type": "websocket.close", "code": 1011 if exc.error != "revoked" else 4403,
                                "reason": exc.message[:120]})
                    break
                if item is None:
                    code = stream.end_fields.get("code")
                    await send({"type": "websocket.close",
                                "code": code if isinstance(code, int) and 1000 <= code < 5000 else 1000})
                    break
                kind, payload = item
                await down.take(len(payload))
                activity.touch()
                if kind == WS_TEXT:
                    await send({"type": "websocket.send", "text": payload.decode("utf-8", "replace")})
                else:
                    await send({"type": "websocket.send", "bytes": payload})
                await stream.consumed(len(payload))
                if pump.done():
                    break
        finally:
            await _stop(pump)
        return None
    finally:
        if watchdog is not None:
            await _stop(watchdog)
        await _finish(registry, stream)
