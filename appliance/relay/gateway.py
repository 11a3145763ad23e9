"""The App Connections' relay addresses, at the ASGI level, in front of the Quart app.

A request to a connection's own host (``app-<label>.<relay host>``) or to
``/relay/<label>/...`` is an app talking to its OctoPrint: its Basic or Bearer credential is
checked and removed, OctoPrint's reverse-proxy headers are added, and it goes through the
printer's tunnel. Everything else goes to the Quart app unchanged.

Why ASGI and not a Quart route (docs/relay.md): Quart's request body reads the client as
fast as it sends, without backpressure, and caps bodies at the app's 3 MiB; a relay reads an
upload only as fast as the printer side takes it.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
from typing import Any

from appliance.apps import connections, owner_access
from appliance.apps.relay_limits import RelayLimits
from appliance.core.errors import HeraldError, headers_of
from appliance.core.herald import Herald
from appliance.core.netaddr import address_behind, is_trusted_proxy
from appliance.relay.forward import (
    RelayFailed,
    Target,
    forward_http,
    forward_websocket,
    forwardable,
)
from appliance.relay.peers import (
    COMMAND_BODY_LIMIT,
    COMMAND_PATH,
    COMMAND_PREFIX,
    VIA_HEADER,
    RelayPeers,
)
from appliance.relay.registry import TunnelRegistry
from appliance.relay.tunnel import PluginCommandFailed

log = logging.getLogger(__name__)

_PATH_FORM = re.compile(r"^/relay/(app-[a-z0-9-]{1,36})(/.*)?$")


class RelayGateway:
    """ASGI middleware: relay addresses to the tunnel, all else to ``app``."""

    def __init__(self, app: Any, herald: Herald, registry: TunnelRegistry, peers: RelayPeers | None = None) -> None:
        self.app = app
        self.herald = herald
        self.registry = registry
        self.peers = peers  # several processes: the hop to the one holding a tunnel

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, "host")
        place = owner_access.relayed_place(self.herald, host, scope["path"])
        if place is not None:
            # The owner's relayed origin (docs/relay.md, "The owner's browser"): a proven owner goes
            # through the tunnel here; the handoff, refusals and "why not" pages are Quart's
            # (apps/owner_routes.py: owner_host_guard), which never serves a Herald page there.
            if place.label is None or scope["path"] == place.handoff_path or \
                    not await self.owner(scope, receive, send, place):
                await self.app(scope, receive, send)
            return
        label = connections.host_label_of(self.herald.settings, host)
        script_name = ""
        path = scope.get("raw_path") or scope["path"].encode()
        path = path.decode("latin-1") if isinstance(path, bytes) else path
        if label is None:
            match = _PATH_FORM.match(scope["path"])
            if match is None:
                await self.app(scope, receive, send)
                return
            label = match.group(1)
            script_name = f"/relay/{label}"
            if match.group(2) is None and scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
                # OctoPrint's pages link relatively: its root is the connection's url with a slash
                query = scope.get("query_string") or b""
                location = script_name + "/" + ("?" + query.decode("latin-1") if query else "")
                await send({"type": "http.response.start", "status": 308, "headers": [
                    (b"location", location.encode("latin-1")), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            path = path[len(script_name):] or "/"
        query = scope.get("query_string") or b""
        url = path + ("?" + query.decode("latin-1") if query else "")
        started = False

        async def watched_send(message) -> None:
            nonlocal started
            started = started or message["type"] in ("http.response.start", "websocket.accept",
                                                     "websocket.http.response.start", "websocket.close")
            await send(message)

        try:
            await self.relay(scope, receive, watched_send, label, script_name, url)
        except Exception:  # a relay bug is a clear 502, never hypercorn's bare 500
            log.exception("relaying %s %s failed", scope.get("method", "WS"), scope["path"])
            if not started:
                await _refuse(scope, send, 502, "Herald could not relay this request.", False, {})

    async def relay(self, scope, receive, send, label: str, script_name: str, url: str) -> None:
        websocket = scope["type"] == "websocket"
        if websocket:
            first = await receive()
            if first["type"] != "websocket.connect":
                return
        try:
            connection = await connections.relay_connection(label, _header(scope, "authorization"))
            printer = await connections.connection_printer(self.herald, connection)
            tunnel = self.registry.tunnel_for(printer.id)
            headers = self.request_headers(scope, script_name, websocket=websocket)
            if tunnel is None and self.peers is not None:
                address = await self.peers.holder_of(printer.id)
                if address is not None:  # a live tunnel in another process is the printer connected
                    via = self.peers.sign(printer.id, connection.id)
                    await self.hop(scope, receive, send, address, via, url, headers)
                    return
            if tunnel is None:  # offline (601 saying so), else online with the relay off
                await connections.connection_printer(self.herald, connection, must_be_online=True)
        except HeraldError as exc:
            status, user_error = connections.app_error_status(exc)
            await _refuse(scope, send, status, exc.message, user_error, headers_of(exc))
            return
        if tunnel is None:
            await _refuse(scope, send, 601, f"{printer.name}'s relay is off: turn it on in the Herald plugin's "
                          "settings in OctoPrint (it is off until the printer's owner allows it).", True, {})
            return
        await self.through(scope, receive, send, Target(tunnel=tunnel, url=url, connection_id=connection.id,
                                                       headers=headers))

    async def owner(self, scope, receive, send, place: owner_access.RelayedPlace) -> bool:
        """Relay a proven owner's request to its printer; False leaves the answer to Quart's pages."""
        assert place.label is not None
        try:
            access = await owner_access.access_for_cookie(self.herald, place.label,
                                                          _cookie(scope, owner_access.RELAY_COOKIE))
        except HeraldError:
            return False
        tunnel = self.registry.tunnel_for(access.printer_id)
        address = None
        if tunnel is None and self.peers is not None:
            address = await self.peers.holder_of(access.printer_id)
        if tunnel is None and address is None:
            return False  # off or offline: owner_routes.relayed_answer says which
        script_name = place.base_path.rstrip("/")
        path = scope.get("raw_path") or scope["path"].encode()
        path = path.decode("latin-1") if isinstance(path, bytes) else path
        if script_name and path == script_name:  # /own/<label> -> /own/<label>/ (OctoPrint links relatively)
            if scope["type"] != "http":
                return False
            await send({"type": "http.response.start", "status": 308, "headers": [
                (b"location", (script_name + "/").encode("latin-1")), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return True
        path = path[len(script_name):] or "/"
        query = scope.get("query_string") or b""
        url = path + ("?" + query.decode("latin-1") if query else "")
        if scope["type"] == "websocket" and (await receive())["type"] != "websocket.connect":
            return True
        headers = self.request_headers(scope, script_name, websocket=scope["type"] == "websocket")
        if tunnel is None:
            assert self.peers is not None and address is not None
            await self.hop(scope, receive, send, address, self.peers.sign(access.printer_id, access.id), url, headers)
        else:
            await self.through(scope, receive, send, Target(tunnel=tunnel, url=url, connection_id=access.id,
                                                            headers=headers))
        return True

    async def through(self, scope, receive, send, target: Target) -> None:
        """Through the tunnel held here, within the connection's limits (apps/relay_limits.py)."""
        websocket = scope["type"] == "websocket"
        limits = RelayLimits.of(self.herald.settings)
        target = dataclasses.replace(target, limits=limits)
        if target.connection_id and self.registry.live_streams(target.connection_id) >= limits.max_streams:
            await _refuse(scope, send, 429, f"This connection already has {limits.max_streams} streams open, the most "
                          "Herald relays at once for one connection; close one and try again.", True,
                          {"Retry-After": "1"})
            return
        length = _header(scope, "content-length").strip()
        if not websocket and length.isdigit() and int(length) > limits.max_body:
            await _refuse(scope, send, 413, f"The request body ({int(length)} bytes) is larger than the "
                          f"{limits.max_body} bytes Herald relays for one request.", True, {})
            return
        try:
            if websocket:
                refused = await forward_websocket(self.registry, target, scope, receive, send)
                if refused is not None:
                    await _refuse(scope, send, refused.status, "OctoPrint refused the WebSocket.", True, {})
            else:
                await forward_http(self.registry, target, scope, receive, send)
        except RelayFailed as exc:
            if exc.error == "too_large":
                await _refuse(scope, send, 413, f"The request body is larger than the {limits.max_body} bytes "
                              "Herald relays for one request.", True, {})
                return
            await _refuse(scope, send, 502, f"The printer could not relay this request: {exc.message}", False, {})

    async def hop(self, scope, receive, send, address: str, via: str, url: str, headers) -> None:
        """Hand the request to the process holding the tunnel (several processes on PostgreSQL)."""
        assert self.peers is not None
        try:
            if scope["type"] == "websocket":
                refused = await self.peers.forward_websocket(address, via, url, headers, scope, receive, send)
                if refused is not None:
                    await _refuse(scope, send, refused, "The relay refused the WebSocket.", True, {})
            else:
                await self.peers.forward_http(address, via, url, headers, scope, receive, send)
        except RelayFailed as exc:
            await _refuse(scope, send, 502, f"The printer could not relay this request: {exc.message}", False, {})

    async def internal(self, scope, receive, send) -> None:
        """The internal listener (peers.py): a hop from another process, signed, for a tunnel held here."""
        if scope["type"] not in ("http", "websocket"):
            return
        if scope["type"] == "websocket" and (await receive())["type"] != "websocket.connect":
            return
        hop = self.peers.verify(_header(scope, VIA_HEADER)) if self.peers is not None else None
        if hop is None:
            await _refuse(scope, send, 403, "Not a signed relay hop.", True, {})
            return
        printer_id, connection_id = hop
        if connection_id.startswith(COMMAND_PREFIX):
            await self.command(scope, receive, send, printer_id, connection_id[len(COMMAND_PREFIX):])
            return
        tunnel = self.registry.tunnel_for(printer_id)
        if tunnel is None:
            await _refuse(scope, send, 601, "The printer's tunnel just closed; try again.", True, {})
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers") or []
                   if k not in (b"host", VIA_HEADER.encode())]
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        url = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        await self.through(scope, receive, send, Target(tunnel=tunnel, url=url, connection_id=connection_id,
                                                        headers=forwardable(headers, websocket=scope["type"] == "websocket")))

    async def command(self, scope, receive, send, printer_id: str, command: str) -> None:
        """A plugin-side command from another process (peers.RelayPeers.call), for a tunnel held here."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != COMMAND_PATH:
            await _refuse(scope, send, 404, "Commands go to " + COMMAND_PATH + ".", True, {})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > COMMAND_BODY_LIMIT:
                await _refuse(scope, send, 413, "The command is too large.", True, {})
                return
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                break
        try:
            asked = json.loads(body)
            args, timeout = asked["args"], float(asked["timeout"])
            if asked["command"] != command or not isinstance(args, dict) or not 0 < timeout <= 120:
                raise ValueError("the command, its arguments or its timeout")
        except (ValueError, KeyError, TypeError) as exc:
            await _refuse(scope, send, 400, f"A malformed command: {exc}", True, {})
            return
        tunnel = self.registry.tunnel_for(printer_id)
        if tunnel is None:
            answer: dict[str, Any] = {"error": "tunnel_closing", "message": "The printer's tunnel just closed."}
        else:
            try:
                answer = {"result": await tunnel.call(command, args, timeout=timeout)}
            except PluginCommandFailed as exc:
                answer = {"error": exc.code, "message": exc.message}
        encoded = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(encoded)).encode())]})
        await send({"type": "http.response.body", "body": encoded})

    def request_headers(self, scope, script_name: str, *, websocket: bool) -> list[tuple[str, str]]:
        """The app's headers for OctoPrint: its credential and Herald's cookies out, proxy headers in."""
        trusted = tuple(self.herald.settings.trusted_proxies)
        peer = (scope.get("client") or ("", 0))[0] or ""
        behind_proxy = is_trusted_proxy(peer, trusted)
        kept: list[tuple[str, str]] = []
        for raw_name, raw_value in scope.get("headers") or []:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name in ("authorization", "host", "x-script-name", VIA_HEADER) or name.startswith("x-forwarded-"):
                continue
            if name == "cookie":
                value = owner_access.forwardable_cookies(value)
                if not value:
                    continue
            kept.append((name, value))
        kept = forwardable(kept, websocket=websocket)
        proto = scope.get("scheme", "http")
        if behind_proxy:
            claimed = _header(scope, "x-forwarded-proto").split(",")[0].strip().lower()
            proto = claimed if claimed in ("http", "https") else proto
        proto = {"ws": "http", "wss": "https"}.get(proto, proto)
        kept += [("X-Forwarded-For", address_behind(peer, _header(scope, "x-forwarded-for"), trusted)),
                 ("X-Forwarded-Proto", proto), ("X-Scheme", proto),
                 ("X-Forwarded-Host", _header(scope, "host"))]
        if script_name:
            kept.append(("X-Script-Name", script_name))
        return kept


def _header(scope, name: str) -> str:
    wanted = name.encode()
    for key, value in scope.get("headers") or []:
        if key == wanted:
            return value.decode("latin-1")
    return ""


def _cookie(scope, name: str) -> str:
    for part in _header(scope, "cookie").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _wants_page(scope) -> bool:
    return "text/html" in _header(scope, "accept")


async def _refuse(scope, send, status: int, message: str, user_error: bool, headers: dict[str, str]) -> None:
    """An app caller gets the app API's envelope; a browser gets a page (502 where the printer is away)."""
    if _wants_page(scope) and status not in (401,):
        page_status = 502 if status in (601, 502) else status
        body = _PAGE.format(message=html.escape(message)).encode()
        content_type, status = "text/html; charset=utf-8", page_status
    else:
        body = json.dumps({"Status": status, "Error": message, "IsUserError": user_error, "Result": None}).encode()
        content_type = "application/json"
    response_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-store"),
                        *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    if scope["type"] == "websocket":
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": response_headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 4000 + status if status < 1000 else 4502})
        return
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Printer not reachable - Herald</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>Printer not reachable</h1>
<p>{message}</p>
<p>Herald relays to OctoPrint through the Herald plugin's connection. Check that OctoPrint is running,
that the plugin is linked, and that its relay is turned on.</p>
</body></html>
"""
