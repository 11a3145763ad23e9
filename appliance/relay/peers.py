"""Several processes (PostgreSQL, ``HERALD_WORKERS`` > 1): a request reaching the process that does not
hold the printer's tunnel is handed to the one that does (docs/relay.md, "Several processes").

Each process also listens on an internal ``127.0.0.1`` port of its own (a second hypercorn
server in the same loop, serving only relay hops), and while it holds a tunnel it keeps a
``relay_holders`` row naming that address. A process without the tunnel streams the request
(already checked, credential removed, proxy headers set) to that address with
``X-Herald-Relay-Via``: the printer, the connection and an expiry, signed with a key derived
from the data directory's secret key, so nothing but a Herald of this installation can ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from appliance.core.herald import Herald
from appliance.relay.forward import HOP_BY_HOP, RelayFailed, forwardable
from appliance.relay.framing import MAX_MESSAGE
from appliance.relay.models import RelayHolder

log = logging.getLogger(__name__)

VIA_HEADER = "x-herald-relay-via"
# A plugin-side command (commands.py: minting an app's API key, pause/resume/cancel) for a tunnel held
# by another process: POSTed to this path of its internal listener, signed for the printer and
# "command:<name>", so a signed relay hop and a command hop can never stand for each other.
COMMAND_PATH = "/_herald/relay-command"
COMMAND_PREFIX = "command:"
COMMAND_BODY_LIMIT = 64 * 1024
VIA_SECONDS = 60  # a signed hop is good for this long
FRESH_FOR = timedelta(seconds=30)  # a holder row not refreshed for this long is ignored
REFRESH_EVERY = 10.0


class RelayPeers:
    """This process's internal relay listener, its holder rows, and the hop to another process."""

    def __init__(self, herald: Herald, holder: str) -> None:
        self.herald = herald
        self.holder = holder
        self.address: str | None = None
        self._key = herald.secret_box.derive_key("relay-internal-hop")
        self._session: Any = None
        self.held: set[str] = set()
        self.hops = 0  # requests this process handed to another
        self._told: set[tuple[str, str]] = set()

    # --- signing the hop

    def sign(self, printer_id: str, connection_id: str) -> str:
        expires = int(time.time()) + VIA_SECONDS
        message = f"{printer_id}|{connection_id}|{expires}"
        mac = hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()
        return f"{message}|{mac}"

    def verify(self, value: str) -> tuple[str, str] | None:
        parts = value.split("|")
        if len(parts) != 4:
            return None
        printer_id, connection_id, expires, mac = parts
        wanted = hmac.new(self._key, f"{printer_id}|{connection_id}|{expires}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, wanted) or not expires.isdigit() or int(expires) < time.time():
            return None
        return printer_id, connection_id

    # --- holder rows

    async def announce(self, printer_id: str) -> None:
        if self.address is None:
            return
        self.held.add(printer_id)
        now = self.herald.clock.now()
        await RelayHolder.update_or_create(printer_id=printer_id, defaults={
            "address": self.address, "holder": self.holder, "updated_at": now})

    async def withdraw(self, printer_id: str) -> None:
        self.held.discard(printer_id)
        await RelayHolder.filter(printer_id=printer_id, holder=self.holder).delete()

    async def holder_of(self, printer_id: str) -> str | None:
        """The internal address of another process holding the printer's tunnel, or None."""
        row = await RelayHolder.get_or_none(printer_id=printer_id)
        if row is None or row.holder == self.holder or row.updated_at < self.herald.clock.now() - FRESH_FOR:
            return None
        return row.address

    async def keep_fresh(self) -> None:
        """Background task: refresh this process's rows, so a crashed process's rows go stale."""
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                if self.held:
                    await RelayHolder.filter(printer_id__in=list(self.held), holder=self.holder).update(
                        updated_at=self.herald.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refreshing the relay holder rows failed; will retry")

    # --- the internal listener

    async def serve(self, internal_app: Callable[..., Any]) -> None:
        """Background task: a hypercorn server on 127.0.0.1:<free port> for hops from other processes."""
        from hypercorn.app_wrappers import ASGIWrapper
        from hypercorn.asyncio.run import worker_serve
        from hypercorn.config import Config, Sockets

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as hypercorn's own sockets
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self.address = f"127.0.0.1:{listener.getsockname()[1]}"
        config = Config()
        config.accesslog = None
        config.errorlog = "-"
        config.keep_alive_timeout = 75.0
        stop = asyncio.Event()

        async def without_lifespan(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    kind = message["type"].rsplit(".", 1)[-1]
                    await send({"type": f"lifespan.{kind}.complete"})
                    if kind == "shutdown":
                        return
            await internal_app(scope, receive, send)

        log.info("relay hops between processes: listening on %s", self.address)
        try:
            # hypercorn's serve() binds its own sockets; handing it ours keeps one owner (and the port known)
            await worker_serve(ASGIWrapper(without_lifespan), config, shutdown_trigger=stop.wait,
                               sockets=Sockets(secure_sockets=[], insecure_sockets=[listener], quic_sockets=[]))
        finally:
            self.address = None
            listener.close()
            if self._session is not None:
                await self._session.close()

    # --- the hop

    def _hopped(self, address: str, what: str = "relaying") -> None:
        self.hops += 1
        if (what, address) not in self._told:
            self._told.add((what, address))
            log.info("%s through the Herald process at %s, which holds the printer's tunnel", what, address)

    def _client(self):
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=5), skip_auto_headers=("User-Agent", "Accept-Encoding"))
        return self._session

    async def call(self, address: str, printer_id: str, command: str, args: dict[str, Any],
                   timeout: float) -> dict[str, Any]:
        """Run a plugin-side command through the process holding the tunnel.

        Returns that process's answer: ``{"result": {...}}``, or ``{"error": code, "message": ...}``
        as its ``Tunnel.call`` failed; RelayFailed when the process could not be asked.
        """
        import aiohttp

        try:
            async with self._client().post(
                    f"http://{address}{COMMAND_PATH}", json={"command": command, "args": args, "timeout": timeout},
                    headers={VIA_HEADER: self.sign(printer_id, COMMAND_PREFIX + command)},
                    timeout=aiohttp.ClientTimeout(total=timeout + 10, sock_connect=5)) as answer:
                body = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RelayFailed("upstream_unreachable", f"the Herald process holding the tunnel: {exc}") from None
        if not isinstance(body, dict) or not ("result" in body or "error" in body):
            raise RelayFailed("upstream_error", "the Herald process holding the tunnel gave no answer")
        self._hopped(address, "asking the plugin")
        return body

    async def forward_http(self, address: str, via: str, url: str, headers: list[tuple[str, str]],
                           scope, receive, send) -> None:
        """Stream one request to the holding process and its answer back; RelayFailed before any answer."""
        import aiohttp

        has_body = any(k == b"content-length" and v.strip() not in (b"0", b"") or k == b"transfer-encoding"
                       for k, v in scope.get("headers") or [])
        gone = asyncio.Event()

        async def body():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body", False):
                    return

        outgoing = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP] + [(VIA_HEADER, via)]
        try:
            answer = await self._client().request(
                scope["method"], f"http://{address}{url}", headers=outgoing, allow_redirects=False,
                data=body() if has_body else None)
        except aiohttp.ClientError as exc:
            raise RelayFailed("upstream_unreachable", f"the Herald process holding the tunnel: {exc}") from None
        self._hopped(address)
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": [
                (k.lower(), v) for k, v in answer.raw_headers if k.lower().decode() not in HOP_BY_HOP]})
            watcher = asyncio.ensure_future(_until_disconnect(receive, gone)) if not has_body else None
            try:
                async for chunk in answer.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if gone.is_set():
                        return
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except aiohttp.ClientError:
                return  # cut short: the app sees the connection end early
            finally:
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
        finally:
            answer.release()

    async def forward_websocket(self, address: str, via: str, url: str, headers: list[tuple[str, str]],
                                scope, receive, send) -> int | None:
        """Relay a WebSocket through the holding process; the refusing status, or None when it ran."""
        import aiohttp

        outgoing = forwardable(headers, websocket=True) + [(VIA_HEADER, via)]
        try:
            upstream = await self._client().ws_connect(f"ws://{address}{url}", headers=outgoing, autoping=True,
                                                       protocols=list(scope.get("subprotocols") or []),
                                                       max_msg_size=MAX_MESSAGE)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        except aiohttp.ClientError as exc:
            raise RelayFailed("upstream_unreachable", f"the Herald process holding the tunnel: {exc}") from None
        self._hopped(address)
        await send({"type": "websocket.accept", "subprotocol": upstream.protocol})

        async def from_app():
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close()
                    return
                if message.get("text") is not None:
                    await upstream.send_str(message["text"])
                elif message.get("bytes") is not None:
                    await upstream.send_bytes(message["bytes"])

        pump = asyncio.ensure_future(from_app())
        try:
            async for message in upstream:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await send({"type": "websocket.send", "text": message.data})
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await send({"type": "websocket.send", "bytes": message.data})
            code = upstream.close_code or 1000
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code if 1000 <= code < 5000 else 1011})
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            await upstream.close()
        return None


async def _until_disconnect(receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
