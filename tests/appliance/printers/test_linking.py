"""Printer linking: the device-authorization flow, the manual key, unlink, verify."""

from __future__ import annotations

import re

from appliance.core.secrets import token_hash
from appliance.printers.linking import LINK_EXPIRES_IN, POLL_INTERVAL, USER_CODE_ALPHABET
from appliance.printers.models import LinkRequest, Printer
from appliance.printers.plugin_compat import MIN_PLUGIN_VERSION
from tests.support.printers import bearer
from tests.support.users import login, make_user

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_KEY = re.compile(r'value="(hpk_[A-Za-z0-9_-]+)"')


async def start(client, name="Voron 2.4"):
    response = await client.post("/api/v1/link", json={"printer_name": name})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def poll(client, device_code):
    response = await client.post("/api/v1/link/token", json={"device_code": device_code})
    return response.status_code, await response.get_json()


async def test_device_flow_links_printer_once(client, clock):
    await make_user()
    started = await start(client)
    assert set(started) == {"device_code", "user_code", "verification_uri", "verification_uri_complete",
                            "expires_in", "interval"}
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}", started["user_code"])
    # Built from HERALD_PUBLIC_URL, never from the request's Host header.
    assert started["verification_uri"] == "http://herald.test/link"
    assert started["verification_uri_complete"] == f"http://herald.test/link?user_code={started['user_code']}"
    assert started["expires_in"] == LINK_EXPIRES_IN and started["interval"] == POLL_INTERVAL
    # The device code is stored only as a hash.
    stored = await LinkRequest.get(device_code_hash=token_hash(started["device_code"]))
    assert started["device_code"] not in (stored.device_code_hash, stored.user_code)

    assert await poll(client, started["device_code"]) == (400, {"error": "authorization_pending",
                                                                 "message": "Waiting for the owner to approve the printer."})
    status, body = await poll(client, started["device_code"])
    assert (status, body["error"]) == (400, "slow_down")

    # Not logged in: the approval page sends the user to log in and back.
    response = await client.get(started["verification_uri_complete"].removeprefix("http://herald.test"))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/link%3Fuser_code%3D")

    csrf = await login(client)
    page = await client.get(f"/link?user_code={started['user_code'].lower()}")
    html = await page.get_data(as_text=True)
    assert page.status_code == 200 and "Voron 2.4" in html and started["user_code"] in html
    response = await client.post("/link/decide", form={"csrf_token": csrf, "user_code": started["user_code"],
                                                       "decision": "approve"})
    assert response.status_code == 200 and "Approved" in await response.get_data(as_text=True)

    clock.advance(POLL_INTERVAL)
    status, body = await poll(client, started["device_code"])
    assert status == 200 and set(body) == {"printer_id", "printer_key"}
    assert body["printer_key"].startswith("hpk_") and len(body["printer_key"]) >= 4 + 43
    printer = await Printer.get(id=body["printer_id"])
    assert printer.name == "Voron 2.4" and printer.key_hash == token_hash(body["printer_key"])
    response = await client.post("/api/v1/printer/verify", json={"plugin_version": "9.9.9"},
                                 headers=bearer(body["printer_key"]))
    assert response.status_code == 200
    assert (await response.get_json())["name"] == "Voron 2.4"
    # Once the printer has used its key, the device code is spent.
    await client.put("/api/v1/printer/status", json={"state": "Operational", "state_id": "operational"},
                     headers=bearer(body["printer_key"]))
    clock.advance(POLL_INTERVAL)
    status, again = await poll(client, started["device_code"])
    assert (status, again["error"]) == (400, "expired_token")


async def test_a_key_whose_answer_was_lost_is_replaced_on_the_next_poll(client, clock):
    """The poll that carried the key lost its answer (connection closed under it): the plugin
    polls again and must still link, with a key of its own; the lost key never works."""
    await make_user()
    started = await start(client)
    csrf = await login(client)
    await client.post("/link/decide", form={"csrf_token": csrf, "user_code": started["user_code"],
                                            "decision": "approve"})
    clock.advance(POLL_INTERVAL)
    status, lost = await poll(client, started["device_code"])
    assert status == 200  # ...but say the plugin never read this answer
    clock.advance(POLL_INTERVAL)
    status, body = await poll(client, started["device_code"])
    assert status == 200 and body["printer_id"] == lost["printer_id"]
    assert body["printer_key"] != lost["printer_key"]
    assert (await Printer.filter(id=body["printer_id"]).count()) == 1
    refused = await client.post("/api/v1/printer/verify", json={}, headers=bearer(lost["printer_key"]))
    assert refused.status_code == 401
    accepted = await client.post("/api/v1/printer/verify", json={}, headers=bearer(body["printer_key"]))
    assert accepted.status_code == 200
    # An unlinked printer is never linked again by an old device code.
    await client.delete("/api/v1/printer", headers=bearer(body["printer_key"]))
    clock.advance(POLL_INTERVAL)
    status, after_unlink = await poll(client, started["device_code"])
    assert (status, after_unlink["error"]) == (400, "expired_token")


async def test_denied_and_expired_codes(client, clock):
    await make_user()
    denied, expired = await start(client, "A"), await start(client, "B")
    csrf = await login(client)
    response = await client.post("/link", form={"csrf_token": csrf, "user_code": denied["user_code"]})
    assert response.status_code == 200 and "A" in await response.get_data(as_text=True)
    response = await client.post("/link/decide", form={"csrf_token": csrf, "user_code": denied["user_code"],
                                                       "decision": "deny"})
    assert "Denied" in await response.get_data(as_text=True)
    assert (await poll(client, denied["device_code"]))[1]["error"] == "access_denied"

    clock.advance(LINK_EXPIRES_IN + 1)
    assert (await poll(client, expired["device_code"]))[1]["error"] == "expired_token"
    response = await client.post("/link", form={"csrf_token": csrf, "user_code": expired["user_code"]})
    assert response.status_code == 400 and "unknown or expired" in await response.get_data(as_text=True)
    assert (await poll(client, "no-such-code"))[1]["error"] == "expired_token"
    assert await Printer.all().count() == 0


async def test_user_code_guessing_is_rate_limited(client):
    await make_user()
    csrf = await login(client)
    statuses = []
    for _ in range(12):
        response = await client.post("/link", form={"csrf_token": csrf, "user_code": "BCDF-GHJK"})
        statuses.append(response.status_code)
    assert statuses[:10] == [400] * 10
    assert statuses[-1] == 429


async def test_link_start_is_rate_limited_per_address(client):
    codes = [(await client.post("/api/v1/link", json={"printer_name": "x"})).status_code for _ in range(21)]
    assert codes[:20] == [201] * 20
    assert codes[20] == 429


async def test_link_start_bad_input(client):
    response = await client.post("/api/v1/link", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and (await response.get_json())["error"] == "invalid_json"
    response = await client.post("/api/v1/link", json={"printer_name": 5})
    body = await response.get_json()
    assert response.status_code == 422 and body["message"].startswith("printer_name:")
    response = await client.post("/api/v1/link", json={})
    assert response.status_code == 422 and "printer_name" in (await response.get_json())["message"]


async def test_relink_keeps_an_unlinked_printer(client, clock, herald):
    from appliance.printers.manage import create_printer, unlink_printer

    user = await make_user()
    old = await create_printer(herald, user, "Ender")
    await unlink_printer(herald, old.printer.id)
    started = await start(client, "Ender 3 (new name)")
    csrf = await login(client)
    page = await client.get(f"/link?user_code={started['user_code']}")
    assert "unlinked, keeps its history" in await page.get_data(as_text=True)
    await client.post("/link/decide", form={"csrf_token": csrf, "user_code": started["user_code"],
                                            "decision": "approve", "relink": old.printer.id})
    status, body = await poll(client, started["device_code"])
    assert status == 200 and body["printer_id"] == old.printer.id
    assert await Printer.all().count() == 1


async def test_relink_page_names_the_printer_it_will_be(client, clock, herald):
    from appliance.printers.manage import create_printer, unlink_printer

    user = await make_user()
    old = await create_printer(herald, user, "Voron 2.4 🚀")
    await unlink_printer(herald, old.printer.id)
    started = await start(client, "Voron again")
    csrf = await login(client)
    response = await client.post("/link/decide", form={"csrf_token": csrf, "user_code": started["user_code"],
                                                       "decision": "approve", "relink": old.printer.id})
    html = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>Voron 2.4 🚀</strong> will finish linking" in html
    assert "<strong>Voron again</strong>" not in html
    assert "OctoPrint asked to be linked as\n     “Voron again”" in html
    status, body = await poll(client, started["device_code"])
    assert status == 200 and (await Printer.get(id=body["printer_id"])).name == "Voron 2.4 🚀"

    # A new printer takes the name it asked for, and the page says just that.
    started = await start(client, "Prusa MK4")
    response = await client.post("/link/decide", form={"csrf_token": csrf, "user_code": started["user_code"],
                                                       "decision": "approve"})
    html = await response.get_data(as_text=True)
    assert "<strong>Prusa MK4</strong> will finish linking" in html and "asked to be linked as" not in html


async def test_manual_add_rename_rotate_remove(client):
    await make_user()
    csrf = await login(client)
    response = await client.post("/printers/new", form={"csrf_token": csrf, "name": "  "})
    assert response.status_code == 400 and "Give the printer a name" in await response.get_data(as_text=True)
    response = await client.post("/printers/new", form={"csrf_token": csrf, "name": "Bambu"})
    html = await response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    key = _KEY.search(html).group(1)
    assert 'data-copy="printer-key"' in html and "js/printers.js" in html
    printer = await Printer.get(name="Bambu")
    assert printer.key_hash == token_hash(key) and key not in str(printer.key_hash)

    response = await client.post("/api/v1/printer/verify", json={}, headers=bearer(key))
    assert response.status_code == 200
    response = await client.post(f"/printers/{printer.id}/rename", form={"csrf_token": csrf, "name": "Bambu X1"})
    assert response.status_code == 302
    response = await client.post("/api/v1/printer/verify", json={}, headers=bearer(key))
    assert (await response.get_json())["name"] == "Bambu X1"

    response = await client.post(f"/printers/{printer.id}/rotate", form={"csrf_token": csrf})
    new_key = _KEY.search(await response.get_data(as_text=True)).group(1)
    assert new_key != key
    assert (await client.post("/api/v1/printer/verify", json={}, headers=bearer(key))).status_code == 401
    assert (await client.post("/api/v1/printer/verify", json={}, headers=bearer(new_key))).status_code == 200

    page = await client.get(f"/printers/{printer.id}/remove")
    assert "cannot be undone" in await page.get_data(as_text=True)
    response = await client.post(f"/printers/{printer.id}/remove", form={"csrf_token": csrf})
    assert response.status_code == 302
    assert await Printer.all().count() == 0
    assert (await client.post("/api/v1/printer/verify", json={}, headers=bearer(new_key))).status_code == 401


async def test_unlink_stops_key_at_once_and_keeps_printer(client, herald):
    from tests.support.printers import make_printer

    user = await make_user()
    printer, key = await make_printer(herald, user)
    assert (await client.post("/api/v1/printer/verify", json={}, headers=bearer(key))).status_code == 200
    response = await client.delete("/api/v1/printer", headers=bearer(key))
    assert response.status_code == 204
    response = await client.post("/api/v1/printer/verify", json={}, headers=bearer(key))
    assert response.status_code == 401 and (await response.get_json())["error"] == "invalid_token"
    await login(client)
    listing = await (await client.get("/api/v1/printers")).get_json()
    assert listing["printers"][0]["id"] == printer.id and listing["printers"][0]["linked"] is False


async def test_verify_refuses_old_plugins_and_bad_credentials(client, herald):
    from tests.support.printers import make_printer

    user = await make_user()
    _printer, key = await make_printer(herald, user)
    response = await client.post("/api/v1/printer/verify", json={"plugin_version": "0.0.1"}, headers=bearer(key))
    body = await response.get_json()
    assert response.status_code == 426 and MIN_PLUGIN_VERSION in body["message"]
    response = await client.post("/api/v1/printer/verify", json={"plugin_version": 12}, headers=bearer(key))
    assert response.status_code == 422 and "plugin_version" in (await response.get_json())["message"]
    for headers in ({}, bearer("hpk_wrong"), bearer("hat_something"), {"Authorization": "Basic eDp5"}):
        response = await client.post("/api/v1/printer/verify", json={}, headers=headers)
        assert response.status_code == 401, headers
        assert "message" in await response.get_json()
