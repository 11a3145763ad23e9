"""GET /api/v1/printer/tunnel and the gateway, in process: the test plays the plugin on the tunnel
WebSocket and an app on the connection's own host (docs/relay.md)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from quart.testing import WebsocketResponseError

from appliance.core.errors import NotAllowed
from appliance.printers.manage import rotate_key
from appliance.relay import framing
from appliance.relay.commands import RelayOff, call_plugin, relay_connected
from appliance.relay.registry import TunnelRegistry
from tests.appliance.apps.test_portal_and_api import _connect
from tests.support.printers import bearer, make_printer
from tests.support.users import login, make_user

HELLO = framing.encode_op("hello", versions=[1], plugin_version="test", window=framing.DEFAULT_WINDOW)


async def test_a_bad_key_is_refused_before_the_upgrade(app, client):
    with pytest.raises(WebsocketResponseError) as refused:
        async with client.websocket("/api/v1/printer/tunnel", headers=bearer("hpk_unknown")) as ws:
            await ws.send(HELLO)
            await ws.receive()
    assert refused.value.response.status_code == 401


async def test_hello_picks_the_version_or_says_why_not(app, client, herald):
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(HELLO)
        answer = json.loads(await ws.receive())
        assert answer["op"] == "hello" and answer["version"] == 1 and answer["max_frame"] == framing.MAX_FRAME
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(framing.encode_op("hello", versions=[7], window=framing.DEFAULT_WINDOW))
        answer = json.loads(await ws.receive())
        assert answer == {"op": "error", "error": "unsupported_version", "message": answer["message"]}


async def _plugin(ws, seen: list, body: bytes) -> None:
    """The plugin's part for one HTTP stream: read the open (and the request body), answer."""
    opened = json.loads(await ws.receive())
    seen.append(opened)
    if opened["body"]:
        while True:
            message = await ws.receive()
            if isinstance(message, bytes):
                seen.append(framing.decode_frame(message)[2].tobytes())
            elif json.loads(message)["op"] == "end":
                break
    stream = opened["stream"]
    await ws.send(framing.encode_op("head", stream=stream, status=200, headers=[["Content-Type", "text/plain"]]))
    await ws.send(framing.encode_frame(stream, framing.DATA, body))
    await ws.send(framing.encode_op("end", stream=stream))


async def test_the_connections_host_goes_through_the_tunnel_with_the_credential_removed(app, client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await client.put("/api/v1/printer/status", headers=bearer(key), json={"state": "Operational",
                                                                         "state_id": "operational"})
    await login(client)
    fields = await _connect(client, herald, printer.id)
    host = fields["url"].split("://", 1)[1]
    assert host.startswith("app-")  # the host form: the test settings' public URL is http://herald.test
    basic = base64.b64encode(f"{fields['authBasicHttpUser']}:{fields['authBasicHttpPassword']}".encode()).decode()
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(HELLO)
        await ws.receive()  # Herald's hello
        seen: list = []
        plugin = asyncio.create_task(_plugin(ws, seen, b"from OctoPrint"))
        response = await client.post("/api/files/local?select=true", data=b"G28\n" * 1000, headers={
            "Host": host, "Authorization": f"Basic {basic}", "X-Api-Key": "octo-key",
            "Cookie": "herald_session=s; session_P80=o", "Content-Length": "4000",
            "X-Herald-Relay-Via": "forged|hop|9999999999|00", "X-Forwarded-For": "203.0.113.9"})
        await plugin
        assert response.status_code == 200
        assert await response.get_data() == b"from OctoPrint"
        opened = seen[0]
        assert opened["method"] == "POST" and opened["url"] == "/api/files/local?select=true"
        sent = {name.lower(): value for name, value in opened["headers"]}
        assert "authorization" not in sent and sent["x-api-key"] == "octo-key" and sent["cookie"] == "session_P80=o"
        assert sent["x-forwarded-host"] == host and "x-script-name" not in sent
        # an app cannot pose as a hop between Herald's processes, nor choose its own address
        assert "x-herald-relay-via" not in sent and sent["x-forwarded-for"] != "203.0.113.9"
        assert b"".join(seen[1:]) == b"G28\n" * 1000


async def test_a_new_key_closes_the_tunnel_and_its_streams(app, client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    registry = herald.part(TunnelRegistry)
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(HELLO)
        await ws.receive()
        assert registry.relay_connected(printer.id)
        tunnel = registry.tunnel_for(printer.id)
        await rotate_key(herald, user, printer.id)  # in this process: housekeeping sees the new key
        await asyncio.wait_for(tunnel.closed.wait(), 30)
    assert not registry.relay_connected(printer.id)


async def test_plugin_side_commands_through_the_tunnel(app, client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    with pytest.raises(RelayOff):
        await call_plugin(herald, printer.id, "mint_api_key", {"app": "OctoPod"})
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(key)) as ws:
        await ws.send(HELLO)
        await ws.receive()
        assert await relay_connected(herald, printer.id)

        async def plugin():
            for answer in ({"result": {"key": "OCTOKEY"}}, {"error": {"code": "not_allowed", "message": "off"}}):
                request = json.loads(await ws.receive())
                assert request["op"] == "request"
                await ws.send(framing.encode_op("response", id=request["id"], **answer))
                if "result" in answer:
                    assert request["command"] == "mint_api_key" and request["args"] == {"app": "OctoPod"}

        answering = asyncio.create_task(plugin())
        assert await call_plugin(herald, printer.id, "mint_api_key", {"app": "OctoPod"}) == {"key": "OCTOKEY"}
        with pytest.raises(NotAllowed, match="refused: off"):
            await call_plugin(herald, printer.id, "revoke_api_key", {"key": "OCTOKEY"})
        await answering
