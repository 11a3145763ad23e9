"""The plugin's tunnel endpoint: ``GET /api/v1/printer/tunnel`` (WebSocket, ``Bearer hpk_...``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from quart import Blueprint, Response, websocket
from quart_schema import hide

from appliance import __version__
from appliance.core.db import shielded
from appliance.core.errors import HeraldError, headers_of, status_of
from appliance.core.herald import current_herald
from appliance.core.secrets import token_hash
from appliance.printers.keys import printer_for_key
from appliance.relay import framing
from appliance.relay.framing import CLOSE_PROTOCOL, FrameError
from appliance.relay.peers import RelayPeers
from appliance.relay.registry import TunnelRegistry
from appliance.relay.tunnel import Tunnel

log = logging.getLogger(__name__)

blueprint = Blueprint("relay", __name__)

HELLO_TIMEOUT = 10.0  # seconds the plugin has to say hello after the upgrade
PING_EVERY = 20.0  # Herald's pings; the plugin pings every 10 s, which keeps hypercorn's read timeout off
SILENCE_LIMIT = 60.0  # a tunnel that says nothing this long is closed


def _refused(exc: HeraldError) -> Response:
    body = json.dumps({"error": exc.code, "message": exc.message})
    return Response(body, status=status_of(exc), headers=headers_of(exc), mimetype="application/json")


@blueprint.websocket("/api/v1/printer/tunnel")
@hide
async def printer_tunnel():
    herald = current_herald()
    scheme, _, key = websocket.headers.get("Authorization", "").partition(" ")
    try:
        printer = await printer_for_key(herald, key.strip() if scheme.lower() == "bearer" else "")
    except HeraldError as exc:
        return _refused(exc)
    registry = herald.part(TunnelRegistry)
    await websocket.accept()
    try:
        hello = framing.decode_op(await asyncio.wait_for(websocket.receive(), HELLO_TIMEOUT))
        version = framing.pick_version(hello.get("versions")) if hello["op"] == "hello" else None
        window = hello.get("window")
        if version is None or not isinstance(window, int) or window < framing.MAX_FRAME:
            await websocket.send(framing.encode_op("error", error="unsupported_version",
                                                   message=f"Herald speaks relay protocol {list(framing.PROTOCOL_VERSIONS)} "
                                                           f"with a window of at least {framing.MAX_FRAME} bytes"))
            await websocket.close(CLOSE_PROTOCOL, "unsupported version")
            return None
    except (TimeoutError, FrameError, TypeError) as exc:
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_PROTOCOL, f"no valid hello: {exc}"[:120])
        return None

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason[:120])

    tunnel = Tunnel(printer.id, send_text=websocket.send, send_bytes=websocket.send, close=close,
                    peer_window=window, key_digest=token_hash(key.strip()))
    await tunnel.send_op("hello", version=version, herald_version=__version__, window=tunnel.own_window,
                         max_frame=framing.MAX_FRAME)
    await registry.attach(tunnel)
    peers = herald.part_or_none(RelayPeers)  # several processes: tell the others where it is
    if peers is not None:
        await shielded(peers.announce(printer.id))
    log.info("printer %s opened its relay tunnel", printer.id)

    async def keep_alive() -> None:
        loop = asyncio.get_running_loop()
        while not tunnel.closed.is_set():
            await asyncio.sleep(PING_EVERY)
            if loop.time() - tunnel.last_heard > SILENCE_LIMIT:
                await tunnel.close(1011, "the plugin stopped answering")
                return
            await tunnel.send_op("ping", id=int(loop.time()))

    pinger = asyncio.create_task(keep_alive())
    try:
        while not tunnel.closed.is_set():
            await tunnel.handle(await websocket.receive())
    except FrameError as exc:
        log.warning("printer %s's tunnel broke the protocol: %s", printer.id, exc)
        await tunnel.close(CLOSE_PROTOCOL, str(exc))
    finally:
        pinger.cancel()
        registry.detach(tunnel)
        tunnel.closed.set()
        if peers is not None and registry.tunnel_for(printer.id) is None:
            with contextlib.suppress(Exception):
                await shielded(peers.withdraw(printer.id))
        log.info("printer %s's relay tunnel closed", printer.id)
    return None
