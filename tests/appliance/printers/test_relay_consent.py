"""The relay's consent in the status push, stored and shown on the printer page."""

from __future__ import annotations

from appliance.printers.manage import create_printer
from appliance.printers.models import Printer
from appliance.printers.status import flush_status
from tests.support.printers import bearer
from tests.support.users import login, make_user

_STATUS = {"state": "Operational", "state_id": "operational"}


async def _page(client, printer_id: str) -> str:
    response = await client.get(f"/printers/{printer_id}")
    assert response.status_code == 200
    return await response.get_data(as_text=True)


async def test_an_old_plugin_without_the_field_reads_as_off(app, client, herald):
    user = await make_user()
    made = await create_printer(herald, user, "Voron")
    assert (await client.put("/api/v1/printer/status", headers=bearer(made.key), json=_STATUS)).status_code == 204
    await login(client)
    page = await _page(client, made.printer.id)
    assert "<strong>Off.</strong>" in page and "open-octoprint" not in page
    view = await (await client.get(f"/api/v1/printers/{made.printer.id}")).get_json()
    assert "relay" not in view["status"]


async def test_the_consent_is_stored_and_shown(app, client, herald):
    user = await make_user()
    made = await create_printer(herald, user, "Voron")
    status = {**_STATUS, "relay": {"enabled": True, "mint_api_keys": True}, "unknown_future_field": 1}
    assert (await client.put("/api/v1/printer/status", headers=bearer(made.key), json=status)).status_code == 204
    await flush_status(herald)
    stored = await Printer.get(id=made.printer.id)
    # an older plugin says nothing of control: stored as off
    assert stored.status["relay"] == {"enabled": True, "mint_api_keys": True, "allow_control": False}
    await login(client)
    page = await _page(client, made.printer.id)
    assert "<strong>On.</strong>" in page and 'id="open-octoprint"' in page
    assert "get an OctoPrint API key of their own" in page
    off = {**_STATUS, "relay": {"enabled": False}}
    assert (await client.put("/api/v1/printer/status", headers=bearer(made.key), json=off)).status_code == 204
    assert "<strong>Off.</strong>" in await _page(client, made.printer.id)


async def test_a_wrong_type_is_a_422_naming_the_field(app, client, herald):
    user = await make_user()
    made = await create_printer(herald, user, "Voron")
    response = await client.put("/api/v1/printer/status", headers=bearer(made.key),
                                json={**_STATUS, "relay": {"enabled": "yes"}})
    assert response.status_code == 422
    assert "relay" in (await response.get_data(as_text=True))


async def test_the_page_says_whether_the_plugins_tunnel_is_up(app, client, herald):
    from appliance.relay import framing

    user = await make_user()
    made = await create_printer(herald, user, "Voron")
    status = {**_STATUS, "relay": {"enabled": True}}
    assert (await client.put("/api/v1/printer/status", headers=bearer(made.key), json=status)).status_code == 204
    await login(client)
    page = await _page(client, made.printer.id)
    assert "<strong>Not connected right now.</strong>" in page and "Connected: the plugin" not in page
    async with client.websocket("/api/v1/printer/tunnel", headers=bearer(made.key)) as ws:
        await ws.send(framing.encode_op("hello", versions=[1], plugin_version="test", window=framing.DEFAULT_WINDOW))
        await ws.receive()  # Herald's hello: the tunnel is attached
        page = await _page(client, made.printer.id)
        assert "Connected: the plugin's connection to Herald is up." in page and "Not connected" not in page
