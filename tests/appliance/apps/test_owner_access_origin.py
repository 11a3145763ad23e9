"""The owner's browser without a wildcard domain: a separate relay origin (another port), a path per printer."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from appliance.apps.models import OwnerRelayAccess
from appliance.core.settings import Settings
from tests.appliance.apps.test_owner_access import _open, _printer, _relay_cookie
from tests.support.users import login

ORIGIN = "192.168.1.5:8443"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings.build(data_dir=str(tmp_path), database_url=database_url, smtp_host="",
                          public_url="http://192.168.1.5:8080", relay_owner_origin=f"http://{ORIGIN}/")


async def test_the_separate_origin_serves_each_printer_under_its_own_path(app, client, herald):
    user, made = await _printer(client, herald)
    await login(client)
    response = await _open(client, made.printer.id)
    assert response.status_code == 303
    url = urlsplit(response.headers["Location"])
    access = await OwnerRelayAccess.get(printer_id=made.printer.id)
    base = f"/own/{access.host_label}/"
    assert url.netloc == ORIGIN and url.path == base + "_herald/handoff"

    redeemed = await client.get(f"{url.path}?{url.query}", headers={"Host": ORIGIN})
    assert redeemed.status_code == 303 and redeemed.headers["Location"] == base
    header = redeemed.headers["Set-Cookie"]
    assert f"Path={base}" in header and "Domain" not in header
    cookie = _relay_cookie(redeemed)
    client.cookie_jar.clear()
    page = await client.get(base, headers={"Host": ORIGIN, "Cookie": f"herald_relay={cookie}"})
    assert page.status_code == 502 and "Not connected yet" in await page.get_data(as_text=True)
    # nothing of Herald's is served on that origin, with or without cookies
    for where in ("/", "/account", "/login", f"/printers/{made.printer.id}", "/own/own-nope/"):
        answer = await client.get(where, headers={"Host": ORIGIN, "Cookie": f"herald_relay={cookie}"})
        assert answer.status_code in (401, 404), where
        assert "<form" not in await answer.get_data(as_text=True)


async def test_the_printer_page_lets_open_octoprints_redirect_reach_the_separate_origin(app, client, herald):
    user, made = await _printer(client, herald)
    await login(client)
    page = await client.get(f"/printers/{made.printer.id}")
    assert f"form-action 'self' http://{ORIGIN};" in page.headers["Content-Security-Policy"]
    assert urlsplit((await _open(client, made.printer.id)).headers["Location"]).netloc == ORIGIN


def test_default_ports_name_the_same_origin(herald):
    from appliance.apps.owner_access import RelayNotIsolated, separate_origin

    same = herald.settings.replace(public_url="https://h.example", relay_owner_origin="https://h.example:443")
    with pytest.raises(RelayNotIsolated):
        separate_origin(dataclasses.replace(herald, settings=same))


@pytest.mark.parametrize("origin, words", [("http://192.168.1.5:8080", "must differ from Herald"),
                                           ("", "HERALD_RELAY_OWNER_ORIGIN"),
                                           ("ftp://192.168.1.5:21", "must be an origin")])
async def test_open_octoprint_refuses_without_an_origin_of_its_own(app, client, herald, origin, words):
    herald.settings = herald.settings.replace(relay_owner_origin=origin)
    user, made = await _printer(client, herald)
    await login(client)
    response = await _open(client, made.printer.id)
    assert response.status_code == 503
    assert words in await response.get_data(as_text=True)
