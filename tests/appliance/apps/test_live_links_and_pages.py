"""Live links from the printer page, their end with the print, the admin's app registry page, account deletion."""

from __future__ import annotations

import re

from appliance.accounts.users import delete_user
from appliance.apps import live_links
from appliance.apps.models import AppConnection, LiveLink
from appliance.printers.manage import create_printer
from tests.support.users import login, make_user
from tests.support.webhooks import store_event

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _csrf(client, path: str) -> str:
    return _CSRF.search(await (await client.get(path)).get_data(as_text=True)).group(1)


async def test_share_live_view_make_list_open_revoke(app, client, herald):
    user = await make_user()
    made = await create_printer(herald, user, "Voron")
    await login(client)
    detail = await (await client.get(f"/printers/{made.printer.id}")).get_data(as_text=True)
    assert f"/printers/{made.printer.id}/live" in detail and "Share live view" in detail
    csrf = await _csrf(client, f"/printers/{made.printer.id}/live")
    bad = await client.post(f"/printers/{made.printer.id}/live", form={"csrf_token": csrf, "hours": "0"})
    assert bad.status_code == 400 and "ExpirationHours must be from 1 to 17520" in await bad.get_data(as_text=True)
    response = await client.post(f"/printers/{made.printer.id}/live", form={"csrf_token": csrf, "hours": "2"})
    html = await response.get_data(as_text=True)
    assert response.status_code == 201
    url = re.search(r'<code id="live-url">([^<]+)</code>', html).group(1)
    link = await LiveLink.get()
    assert link.live_id in html
    anonymous = app.test_client()
    path = url.removeprefix(herald.settings.base_url)
    assert (await anonymous.get(path)).status_code == 200
    assert (await anonymous.get(path + "/snapshot.jpg")).status_code == 404  # no snapshot yet
    # another user cannot revoke it, nor see the printer's links
    stranger = app.test_client()
    await make_user("bo@example.com")
    await login(stranger, "bo@example.com")
    assert (await stranger.get(f"/printers/{made.printer.id}/live")).status_code == 404
    token = await _csrf(stranger, "/account")
    assert (await stranger.post(f"/printers/{made.printer.id}/live/{link.live_id}/revoke",
                                form={"csrf_token": token})).status_code == 404
    await client.post(f"/printers/{made.printer.id}/live/{link.live_id}/revoke", form={"csrf_token": csrf})
    gone = await anonymous.get(path)
    assert gone.status_code == 404 and "expired or was ended" in await gone.get_data(as_text=True)


async def test_live_link_expires_and_ends_with_the_print(app, herald, clock):
    user = await make_user()
    made = await create_printer(herald, user, "Prusa")
    lasting = await live_links.create_live_link(herald, user, made.printer.id, 1, end_when_print_complete=False)
    ending = await live_links.create_live_link(herald, user, made.printer.id, 48, end_when_print_complete=True)
    token_of = {lasting.link.id: lasting.url.rsplit("/", 1)[1], ending.link.id: ending.url.rsplit("/", 1)[1]}
    await store_event(herald, made.printer, "print.progress", payload={"progress": 50})
    await live_links.open_live_link(herald, token_of[ending.link.id])  # still open mid-print
    await store_event(herald, made.printer, "print.done")
    assert (await LiveLink.get(id=ending.link.id)).ended_reason == "print complete"
    await live_links.open_live_link(herald, token_of[lasting.link.id])
    clock.advance(3601)
    for token in token_of.values():
        try:
            await live_links.open_live_link(herald, token)
        except Exception as exc:
            assert "expired" in str(exc)
        else:
            raise AssertionError("an ended live link still opened")


async def test_admin_registers_an_app_that_then_starts_the_portal(app, client, herald):
    await make_user(admin=True)
    await login(client)
    page = await (await client.get("/admin/apps")).get_data(as_text=True)
    assert "octopod" in page and "mobileraker" in page and "built in" in page
    csrf = await _csrf(client, "/admin/apps")
    refused = await client.post("/admin/apps", form={"csrf_token": csrf, "app_id": "printy", "name": "Printy",
                                                    "prefixes": "javascript://x"})
    assert refused.status_code == 400 and "cannot be return URLs" in await refused.get_data(as_text=True)
    done = await client.post("/admin/apps", form={"csrf_token": csrf, "app_id": "printy", "name": "Printy",
                                                 "logo_url": "https://printy.example/logo.png",
                                                 "prefixes": "printy://done\nhttps://printy.example/back"})
    assert done.status_code == 302
    portal = await client.get("/appportal/v1/?appId=printy&returnUrl=https://printy.example/back?x=1")
    html = await portal.get_data(as_text=True)
    assert portal.status_code == 200 and "Printy" in html
    assert 'src="https://printy.example/logo.png"' in html and 'width="100" height="100"' in html
    assert "img-src 'self' data: https://printy.example" in portal.headers["Content-Security-Policy"]
    await client.post("/admin/apps/printy/disable", form={"csrf_token": csrf})
    assert (await client.get("/appportal/v1/?appId=printy&returnUrl=printy://done")).status_code == 404
    normal = app.test_client()
    await make_user("bo@example.com")
    await login(normal, "bo@example.com")
    assert (await normal.get("/admin/apps")).status_code == 403


async def test_deleting_the_user_ends_every_connection(app, client, herald):
    user = await make_user()
    made = await create_printer(herald, user, "Prusa")
    await AppConnection.create(id="c" * 32, user_id=user.id, printer_id=made.printer.id, printer_name="P",
                               app_id="octopod", app_name="OctoPod", host_label="app-x", app_token_hash="a" * 64,
                               bearer_token_hash="b" * 64, basic_user="u", basic_password_hash="c" * 64,
                               created_at=herald.clock.now())
    await make_user("admin@example.com", admin=True)
    await delete_user(herald, user)
    assert await AppConnection.all().count() == 0


async def test_a_printer_linked_from_the_portal_comes_back_to_it(app, client, herald):
    await make_user()
    await login(client)
    portal = "/appportal/v1/?appId=octopod&returnUrl=octopod%3A%2F%2Foctoeverywhere"
    page = await (await client.get(portal)).get_data(as_text=True)
    assert "You have no linked printer yet." in page
    link = re.search(r'href="(/link\?next=[^"]+)"', page).group(1)
    started = await (await client.post("/api/v1/link", json={"printer_name": "Voron 2.4"})).get_json()
    form_page = await (await client.get(link.replace("&amp;", "&"))).get_data(as_text=True)
    next_value = re.search(r'name="next" value="([^"]+)"', form_page).group(1).replace("&amp;", "&")
    assert next_value.startswith("/appportal/v1/?appId=octopod")
    csrf = _CSRF.search(form_page).group(1)
    confirm = await client.post("/link", form={"csrf_token": csrf, "user_code": started["user_code"],
                                               "next": next_value})
    assert 'name="next"' in await confirm.get_data(as_text=True)
    done = await client.post("/link/decide", form={"csrf_token": csrf, "user_code": started["user_code"],
                                                   "decision": "approve", "next": next_value})
    html = await done.get_data(as_text=True)
    assert "Approved" in html and 'href="/appportal/v1/?appId=octopod' in html
    # the plugin's next poll takes the key, and the printer is there
    await client.post("/api/v1/link/token", json={"device_code": started["device_code"]})
    back = await (await client.get(next_value)).get_data(as_text=True)
    assert "Voron 2.4" in back and "You have no linked printer yet." not in back


async def test_live_link_shows_the_latest_snapshot(app, herald):
    user = await make_user()
    made = await create_printer(herald, user, "Prusa")
    made_link = await live_links.create_live_link(herald, user, made.printer.id, 2)
    path = made_link.url.removeprefix(herald.settings.base_url)
    relative = "snapshots/test.jpg"
    (herald.settings.data_path / "snapshots").mkdir(parents=True, exist_ok=True)
    (herald.settings.data_path / relative).write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    await store_event(herald, made.printer, "print.started", snapshot_path=relative)
    anonymous = app.test_client()
    page = await (await anonymous.get(path)).get_data(as_text=True)
    assert f'src="{path}/snapshot.jpg"' in page
    snapshot = await anonymous.get(path + "/snapshot.jpg")
    assert snapshot.status_code == 200 and snapshot.mimetype == "image/jpeg"
    assert await snapshot.get_data() == b"\xff\xd8\xff\xe0 a jpeg"
