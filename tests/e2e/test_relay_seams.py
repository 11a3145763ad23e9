"""Where the relay meets App Connections and the owner's browser, end to end: a real OctoPrint
(virtual printer) with the plugin, relay and key minting allowed, behind a real Herald under
hypercorn. The OctoPrint API key an app asked for is made by the plugin over the tunnel and
deleted with the connection; the owner's "Open OctoPrint" reaches OctoPrint through the tunnel
on a host of its own, without Herald's cookies (docs/relay.md)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.e2e.test_plugin_octoprint import HeraldOwner, link, plugin_state, wait_for
from tests.e2e.test_relay_octoprint import EMAIL, PASSWORD, HeaderEcho
from tests.support.octoprint import ADMIN_USER, API_KEY, OctoPrintServer, free_port, running
from tests.support.server import LiveServer, serving_with_admin

pytestmark = pytest.mark.slow

RELAY_HOST = "relay.test"  # HERALD_RELAY_URL's host: App Connections get app-..., the owner own-...
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def echo():
    server = HeaderEcho()
    yield server
    server.close()


@pytest.fixture
def herald(tmp_path: Path):
    with serving_with_admin(tmp_path / "herald", free_port(), EMAIL, PASSWORD,
                            {"HERALD_RELAY_URL": f"http://{RELAY_HOST}"}) as server:
        yield server


@pytest.fixture
def octoprint(tmp_path: Path, herald: LiveServer, echo: HeaderEcho):
    server = OctoPrintServer(tmp_path / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "Seams Prusa", "interval_printing": 5, "interval_idle": 5,
        "relay": {"enabled": True, "mint_api_keys": True, "api_key_user": ADMIN_USER}})
    server.prepare()
    import yaml

    config_path = server.basedir / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["plugins"]["classicwebcam"] = {"_config_version": 1, "snapshot": echo.url}
    config_path.write_text(yaml.safe_dump(config))
    with running(server, "octoprint-relay-seams"):
        yield server


@pytest.fixture
def linked(herald: LiveServer, octoprint: OctoPrintServer):
    owner = HeraldOwner(herald.url).login()
    printer_id = link(octoprint, owner)
    wait_for(lambda: (plugin_state(octoprint).get("relay_tunnel") or {}).get("connected"), 60,
             "the plugin's relay tunnel to open")
    # Herald learns the owner's yes to minting from the plugin's status push
    wait_for(lambda: ((owner.printer(printer_id).get("status") or {}).get("relay") or {}).get("mint_api_keys"),
             60, "the status push saying key minting is allowed")
    return owner, printer_id


def _octoprint_version(octoprint: OctoPrintServer, key: str) -> int:
    return requests.get(octoprint.url + "/api/version", headers={"X-Api-Key": key}, timeout=10).status_code


def test_the_apps_octoprint_key_is_minted_over_the_tunnel_and_deleted_with_the_connection(
        linked, octoprint: OctoPrintServer):
    owner, printer_id = linked
    query = "appid=octopod&returnUrl=octopod://octoeverywhere&octoPrintApiKeyAppName=OctoPod"
    page = owner.session.get(f"{owner.base_url}/appportal/v1/consent?{query}&printer={printer_id}", timeout=10)
    assert page.status_code == 200 and "OctoPrint API key" in page.text, page.text
    response = owner.session.post(owner.base_url + "/appportal/v1/consent", allow_redirects=False, timeout=60, data={
        "csrf_token": _CSRF.search(page.text).group(1), "printer": printer_id, "decision": "approve",
        "appId": "octopod", "returnUrl": "octopod://octoeverywhere", "octoPrintApiKeyAppName": "OctoPod"})
    assert response.status_code == 302, response.text
    fields = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    key = fields["octoPrintApiKey"]
    assert key and key != API_KEY
    assert _octoprint_version(octoprint, key) == 200  # OctoPrint itself takes the minted key

    token = owner._csrf("/account/apps")
    revoked = owner.session.post(f"{owner.base_url}/account/app-connections/{fields['id']}/revoke",
                                 data={"csrf_token": token}, allow_redirects=False, timeout=60)
    assert revoked.status_code == 302, revoked.text
    wait_for(lambda: _octoprint_version(octoprint, key) == 403, 30, "OctoPrint to refuse the revoked key")
    assert _octoprint_version(octoprint, API_KEY) == 200  # the owner's own key is untouched


def test_open_octoprint_reaches_octoprint_through_the_tunnel_without_heralds_cookies(
        linked, herald: LiveServer, echo: HeaderEcho):
    owner, printer_id = linked
    token = owner._csrf(f"/printers/{printer_id}")
    opened = owner.session.post(f"{owner.base_url}/printers/{printer_id}/open-octoprint",
                                data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert opened.status_code == 303, opened.text
    entry = urlsplit(opened.headers["Location"])
    assert entry.hostname.startswith("own-") and entry.hostname.endswith("." + RELAY_HOST)
    host = entry.hostname

    def get(path: str, **kwargs) -> requests.Response:  # the relayed host, reached on Herald's port
        headers = {"Host": host, **kwargs.pop("headers", {})}
        return requests.get(herald.url + path, headers=headers, allow_redirects=False, timeout=30, **kwargs)

    entered = get(entry.path + "?" + entry.query)
    assert entered.status_code == 303 and entered.cookies.get("herald_relay"), entered.text
    relay_cookie = entered.cookies["herald_relay"]
    herald_session = owner.session.cookies.get("herald_session")
    assert herald_session
    # a browser on a sibling host under one domain may send Herald's cookies along: they never pass
    cookies = f"herald_relay={relay_cookie}; herald_session={herald_session}; octoprint_own=kept"

    version = get("/api/version", headers={"Cookie": cookies, "X-Api-Key": API_KEY})
    assert version.status_code == 200, version.text
    assert "server" in version.json() and "api" in version.json()  # OctoPrint's own answer
    ui = get("/", headers={"Cookie": cookies})
    assert ui.status_code == 302, ui.text  # OctoPrint 1.11 sends a visitor without its login to its login page
    login_page = urlsplit(ui.headers["Location"])
    assert login_page.hostname in (None, host) and "login" in login_page.path  # on the relayed host, not Herald's
    login = get(login_page.path + ("?" + login_page.query if login_page.query else ""), headers={"Cookie": cookies})
    assert login.status_code == 200 and "OctoPrint" in login.text

    seen_before = len(echo.seen)
    snapshot = get("/_herald/webcam/snapshot", headers={"Cookie": cookies})
    assert snapshot.status_code == 200, snapshot.text
    forwarded = echo.seen[seen_before]
    assert "octoprint_own=kept" in forwarded.get("cookie", "")
    assert "herald_relay" not in forwarded.get("cookie", "") and "herald_session" not in forwarded.get("cookie", "")

    assert get("/api/version", headers={"X-Api-Key": API_KEY}).status_code == 401  # no relay cookie: no relay
    # the bytes it relayed are on the owner's Connected apps page
    wait_for(lambda: "Seams Prusa" in (page := owner.session.get(owner.base_url + "/account/apps", timeout=10).text)
             and re.search(r"\d+(\.\d+)?\s*(B|KB|kB|KiB|MB|MiB)", page), 30, "the owner's relayed bytes on the page")
