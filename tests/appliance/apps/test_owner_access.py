"""The owner's browser through the relay: TLS's ask, the one-time handoff, the relayed origin's own cookie.

The browser's side of the isolation (a script on the relayed origin against Herald's cookies and
API) is proven in real Chromium: tests/e2e/test_relay_origin_browser.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from appliance.accounts.models import LoginSession
from appliance.apps.models import OwnerRelayAccess, RelayHandoff
from appliance.printers.manage import create_printer, unlink_printer
from tests.appliance.apps.test_portal_and_api import _connect
from tests.support.printers import bearer
from tests.support.users import login, make_user

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ON = {"state": "Operational", "state_id": "operational", "relay": {"enabled": True, "mint_api_keys": False}}


async def _printer(client, herald, user=None, status=ON, name="Voron"):
    user = user or await make_user()
    made = await create_printer(herald, user, name)
    assert (await client.put("/api/v1/printer/status", headers=bearer(made.key), json=status)).status_code == 204
    return user, made


async def _open(client, printer_id: str):
    page = await (await client.get(f"/printers/{printer_id}")).get_data(as_text=True)
    csrf = _CSRF.search(page).group(1)
    return await client.post(f"/printers/{printer_id}/open-octoprint", form={"csrf_token": csrf})


async def _handoff_url(client, printer_id: str) -> tuple[str, str]:
    response = await _open(client, printer_id)
    assert response.status_code == 303, await response.get_data(as_text=True)
    url = urlsplit(response.headers["Location"])
    return url.netloc, f"{url.path}?{url.query}"


def _relay_cookie(response) -> str:
    jar = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        jar.load(header)
    return jar["herald_relay"].value


async def _enter(client, host: str, path: str):
    """Redeem the handoff on its host; the relay cookie's value."""
    response = await client.get(path, headers={"Host": host})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    # the test client keeps every cookie for every host: the tests send the relay cookie themselves
    for kept in [c for c in client.cookie_jar if c.name == "herald_relay"]:
        client.cookie_jar.clear(kept.domain, kept.path, kept.name)
    return response


async def test_open_octoprint_hands_off_to_a_host_of_its_own(app, client, herald):
    user, made = await _printer(client, herald)
    await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    access = await OwnerRelayAccess.get(printer_id=made.printer.id)
    assert host == f"{access.host_label}.herald.test" and re.fullmatch(r"own-[0-9a-f]{32}", access.host_label)
    assert path.startswith("/_herald/handoff?code=hrh_")
    code = path.split("code=")[1]
    assert (await RelayHandoff.get()).code_hash != code  # stored hashed

    response = await _enter(client, host, path)
    header = response.headers.get("Set-Cookie")
    assert header.startswith("herald_relay=") and "HttpOnly" in header and "SameSite=Lax" in header
    assert "Domain" not in header  # host-only: never sent to Herald's host nor a sibling
    cookie = _relay_cookie(response)
    page = await client.get("/", headers={"Host": host, "Cookie": f"herald_relay={cookie}"})
    assert page.status_code == 502 and "Not connected yet" in await page.get_data(as_text=True)
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    # a second "Open OctoPrint" reuses the printer's host
    assert (await _handoff_url(client, made.printer.id))[0] == host


def _form_action(response) -> list[str]:
    policy = response.headers["Content-Security-Policy"]
    return re.search(r"form-action ([^;]+)", policy).group(1).split()


async def test_the_printer_page_lets_open_octoprints_redirect_reach_the_relayed_host(app, client, herald):
    """Browsers hold a form's redirects to the page's form-action: the 303 to own-<hex>.<relay host> must
    be listed there, or the click opens a blank tab (tests/e2e/test_relay_octoprint_ui.py, in Chromium)."""
    user, made = await _printer(client, herald)
    await login(client)
    page = await client.get(f"/printers/{made.printer.id}")
    assert _form_action(page) == ["'self'", "http://*.herald.test"]
    host, _path = await _handoff_url(client, made.printer.id)
    assert host.endswith(".herald.test")  # the wildcard covers where the redirect went
    # the relay off: no button, Herald's usual policy; other pages keep it too
    off = {**ON, "relay": {"enabled": False}}
    assert (await client.put("/api/v1/printer/status", headers=bearer(made.key), json=off)).status_code == 204
    assert _form_action(await client.get(f"/printers/{made.printer.id}")) == ["'self'"]
    assert _form_action(await client.get("/printers")) == ["'self'"]


async def test_the_code_works_once_within_a_minute_on_its_own_host(app, client, herald, clock):
    user, made = await _printer(client, herald)
    _, other = await _printer(client, herald, user=user, name="Prusa")
    await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    await _enter(client, host, path)
    again = await client.get(path, headers={"Host": host})
    assert again.status_code == 401 and "already used" in await again.get_data(as_text=True)

    host, path = await _handoff_url(client, made.printer.id)
    clock.advance(61)
    assert (await client.get(path, headers={"Host": host})).status_code == 401

    # a code for one printer's host does nothing on another printer's host (and is burnt)
    other_host, _ = await _handoff_url(client, other.printer.id)
    host, path = await _handoff_url(client, made.printer.id)
    assert (await client.get(path, headers={"Host": other_host})).status_code == 401
    assert (await client.get(path, headers={"Host": host})).status_code == 401
    assert (await client.get("/_herald/handoff?code=hrh_made_up", headers={"Host": host})).status_code == 401


async def test_the_relay_cookie_is_bound_to_its_host_owner_and_printer(app, client, herald):
    user, made = await _printer(client, herald)
    _, other = await _printer(client, herald, user=user, name="Prusa")
    await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    cookie = _relay_cookie(await _enter(client, host, path))
    other_host, _ = await _handoff_url(client, other.printer.id)
    replayed = await client.get("/", headers={"Host": other_host, "Cookie": f"herald_relay={cookie}"})
    assert replayed.status_code == 401
    forged = cookie.rsplit(".", 1)[0] + "." + "0" * 64
    assert (await client.get("/", headers={"Host": host, "Cookie": f"herald_relay={forged}"})).status_code == 401
    # unlinking the printer ends the owner's relayed session at once
    await unlink_printer(herald, made.printer.id)
    unlinked = await client.get("/", headers={"Host": host, "Cookie": f"herald_relay={cookie}"})
    assert unlinked.status_code == 401
    assert "no longer linked" in await unlinked.get_data(as_text=True)


async def test_logging_out_of_herald_ends_the_relayed_octoprint(app, client, herald, clock):
    """The relay cookie lives on the relayed host, where Herald's logout cannot delete it: it is bound to
    the login session that opened it, so ending that session ends it at once, not 12 hours later."""
    user, made = await _printer(client, herald)
    csrf = await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    cookie = _relay_cookie(await _enter(client, host, path))
    relayed = {"Host": host, "Cookie": f"herald_relay={cookie}"}
    assert (await client.get("/", headers=relayed)).status_code == 502  # in (the plugin is not connected)

    assert (await client.post("/logout", form={"csrf_token": csrf})).status_code == 302
    after = await client.get("/", headers=relayed)
    assert after.status_code == 401 and "logged out of Herald" in await after.get_data(as_text=True)
    # a code made before the logout is no use after it either
    await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    (session,) = await LoginSession.filter(user_id=user.id)
    await session.delete()
    assert (await client.get(path, headers={"Host": host})).status_code == 401

    # the cookie never outlives its session: a session ending in an hour gives a cookie of an hour
    await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    await LoginSession.filter(user_id=user.id).update(expires_at=clock.now() + timedelta(hours=1))
    response = await _enter(client, host, path)
    assert "Max-Age=3600" in response.headers["Set-Cookie"]
    cookie = _relay_cookie(response)
    assert (await client.get("/", headers={"Host": host, "Cookie": f"herald_relay={cookie}"})).status_code == 502
    clock.advance(3601)
    assert (await client.get("/", headers={"Host": host, "Cookie": f"herald_relay={cookie}"})).status_code == 401
    # a malformed cookie is a clear 401, never a 500
    for junk in ("a.1.2.3", "a." + "9" * 5000 + ".1.1.x", "a.-1.1.1.x", "....."):
        assert (await client.get("/", headers={"Host": host, "Cookie": f"herald_relay={junk}"})).status_code == 401


async def test_herald_sessions_and_pages_never_cross_to_the_relayed_origin(app, client, herald):
    user, made = await _printer(client, herald)
    await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    cookie = _relay_cookie(await _enter(client, host, path))
    # Herald's session (the test client sends it) is no credential on the relayed host, and no Herald
    # page is served there
    for where in ("/", "/account", f"/printers/{made.printer.id}", "/api/v1/printers"):
        response = await client.get(where, headers={"Host": host})
        assert response.status_code == 401, where
        assert "Open OctoPrint from Herald" in await response.get_data(as_text=True)
    # a state-changing request there never reaches Herald's rules either
    posted = await client.post(f"/printers/{made.printer.id}/rename", headers={"Host": host,
                               "Cookie": f"herald_relay={cookie}"}, form={"name": "pwned"})
    assert posted.status_code == 502, await posted.get_data(as_text=True)
    # the relay cookie is no credential on Herald's pages
    client.cookie_jar.clear()
    page = await client.get("/account", headers={"Cookie": f"herald_relay={cookie}"})
    assert page.status_code == 302 and "/login" in page.headers["Location"]


async def test_off_offline_unlinked_and_others_printers_are_refused(app, client, herald, clock):
    off = {**ON, "relay": {"enabled": False}}
    user, made = await _printer(client, herald, status=off)
    await login(client)
    refused = await _open(client, made.printer.id)
    assert refused.status_code == 403 and "Remote access is off" in await refused.get_data(as_text=True)
    _, stranger = await _printer(client, herald, user=await make_user("bob@example.com"))
    csrf = _CSRF.search(await (await client.get(f"/printers/{made.printer.id}")).get_data(as_text=True)).group(1)
    assert (await client.post(f"/printers/{stranger.printer.id}/open-octoprint",
                              form={"csrf_token": csrf})).status_code == 404
    assert (await client.post(f"/printers/{made.printer.id}/open-octoprint")).status_code == 403  # no CSRF token

    _, online = await _printer(client, herald, user=user, name="Prusa")
    host, path = await _handoff_url(client, online.printer.id)
    cookie = _relay_cookie(await _enter(client, host, path))
    clock.advance(400)  # silent past the offline threshold
    page = await client.get("/", headers={"Host": host, "Cookie": f"herald_relay={cookie}"})
    assert page.status_code == 502 and "is offline" in await page.get_data(as_text=True)


async def test_a_proven_owner_without_a_tunnel_is_told_the_plugin_is_not_connected(app, client, herald):
    # consent on and online, but no tunnel in the registry: the gateway leaves it to this page
    user, made = await _printer(client, herald)
    await login(client)
    host, path = await _handoff_url(client, made.printer.id)
    cookie = _relay_cookie(await _enter(client, host, path))
    page = await client.get("/api/version", headers={"Host": host, "Cookie": f"herald_relay={cookie}"})
    assert page.status_code == 502 and "no relay connection" in await page.get_data(as_text=True)


async def test_tls_ask_answers_only_for_live_hosts(app, client, herald):
    assert (await client.get("/_herald/tls-ask")).status_code == 400
    for domain in ("herald.test", "app-nope.herald.test", "own-nope.herald.test", "evil.example.com",
                   "x.own-abc.herald.test"):
        assert (await client.get("/_herald/tls-ask", query_string={"domain": domain})).status_code == 404, domain
    user, made = await _printer(client, herald)
    await login(client)
    connection = await _connect(client, herald, made.printer.id)
    app_host = urlsplit(connection["url"]).hostname
    assert (await client.get("/_herald/tls-ask", query_string={"domain": app_host})).status_code == 200
    assert (await client.get("/_herald/tls-ask", query_string={"domain": app_host.upper()})).status_code == 200
    owner_host, _ = await _handoff_url(client, made.printer.id)
    assert (await client.get("/_herald/tls-ask", query_string={"domain": owner_host})).status_code == 200
    csrf = _CSRF.search(await (await client.get("/account/apps")).get_data(as_text=True)).group(1)
    await client.post(f"/account/app-connections/{connection['id']}/revoke", form={"csrf_token": csrf})
    assert (await client.get("/_herald/tls-ask", query_string={"domain": app_host})).status_code == 404
    await unlink_printer(herald, made.printer.id)
    assert (await client.get("/_herald/tls-ask", query_string={"domain": owner_host})).status_code == 404


def test_forwarded_requests_carry_none_of_heralds_cookies():
    from appliance.apps.owner_access import forwardable_cookies

    header = "herald_session=s; session_P5000=octo; herald_relay=r; herald_csrf=c; remember_token=x"
    assert forwardable_cookies(header) == "session_P5000=octo; remember_token=x"
    assert forwardable_cookies("") == ""
