"""The owner's relayed origin in real Chromium: "Open OctoPrint" and what a script there cannot do.

OctoPrint runs third-party plugins' scripts in its pages; through the relay they run on the
printer's relayed origin (``own-<hex>.<relay host>``). Until the tunnel forwards there, the origin
answers its "relay not available" page; the scripts below run in that page as a plugin's script
would in OctoPrint's (with the page's CSP bypassed, so no policy of Herald's placeholder page does
the work). They must not read Herald's cookies nor make a credentialed state-changing request to
Herald, where the relay's domain is another site than Herald's, where it is a subdomain of Herald's
own host (same site: then Herald's CSRF token and CORS alone must hold), and where it is another port
of Herald's host (HERALD_RELAY_OWNER_ORIGIN: cookies are shared by the host there, HttpOnly). A control run from
Herald's own page shows the same request does change state there, so the checks can fail.

Chromium maps the test's host names to 127.0.0.1 (``--host-resolver-rules``); Herald listens there.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sqlite3
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SeededServer, log_in

pytestmark = pytest.mark.slow

STATUS = {"state": "Operational", "state_id": "operational", "relay": {"enabled": True, "mint_api_keys": False}}
LAYOUTS = {
    # Herald on 127.0.0.1, the relay under a name of its own: another site
    "separate-site": {"public": None, "relay": "relay.test"},
    # the relay under Herald's own host (no HERALD_RELAY_URL): same site, another origin
    "same-site": {"public": "herald.test", "relay": None},
    # no wildcard domain: HERALD_RELAY_OWNER_ORIGIN, another port of Herald's host (a proxy forwards it)
    "separate-port": {"public": None, "relay": None, "port": True},
}


class PortForwarder:
    """A TCP proxy 127.0.0.1:<port> -> Herald, as a reverse proxy's second port would be (Host kept)."""

    def __init__(self, target: int) -> None:
        from tests.conftest import free_port

        self.port, self.target = free_port(), target
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):  # shutdown wakes the other direction's thread; close frees both
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request, tmp_path):
    from tests.conftest import free_port

    port = free_port()
    chosen = LAYOUTS[request.param]
    env = {"HERALD_SIGNUP_MODE": "closed", "HERALD_LIVE_HEARTBEAT": "60"}
    public = f"http://{chosen['public']}:{port}" if chosen["public"] else f"http://127.0.0.1:{port}"
    if chosen["public"]:
        env["HERALD_PUBLIC_URL"] = public
    if chosen["relay"]:
        env["HERALD_RELAY_URL"] = f"http://{chosen['relay']}:{port}"
    forwarder = PortForwarder(port) if chosen.get("port") else None
    if forwarder:
        env["HERALD_RELAY_URL"] = f"http://127.0.0.1:{port}"
        env["HERALD_RELAY_OWNER_ORIGIN"] = f"http://127.0.0.1:{forwarder.port}"
    server = SeededServer(data_dir=tmp_path / "data", port=port, env=env)
    server.data_dir.mkdir(parents=True)
    server.create_admin()
    server.start()
    names = [n for n in (chosen["public"], chosen["relay"]) if n]
    rules = ", ".join(f"MAP {n} 127.0.0.1, MAP *.{n} 127.0.0.1" for n in names) or "MAP none.test 127.0.0.1"
    try:
        yield server, public, rules
    finally:
        if forwarder:
            forwarder.close()
        assert server.stop() in (0, None), server.log()


def printer_name(server: SeededServer, printer_id: str) -> str:
    with sqlite3.connect(server.db_path, timeout=10) as db:
        return db.execute("SELECT name FROM printers WHERE id = ?", (printer_id,)).fetchone()[0]


ATTACKS = """async ([herald, printerId]) => {
  const out = {cookie: document.cookie};
  const attempt = async (name, url, init) => {
    try { const r = await fetch(url, init); out[name] = {status: r.status, type: r.type,
                                                         body: r.type === 'opaque' ? '' : await r.text()}; }
    catch (e) { out[name] = {error: String(e)}; }
  };
  // read Herald's API with the owner's cookies
  await attempt('read', herald + '/api/v1/printers', {credentials: 'include'});
  // a simple (no-preflight) cross-origin form POST with cookies: the response is opaque, but would it act?
  await attempt('rename_simple', herald + '/printers/' + printerId + '/rename', {method: 'POST',
    credentials: 'include', mode: 'no-cors', body: new URLSearchParams({name: 'renamed-by-fetch'})});
  // the same with a made-up CSRF header: needs a preflight Herald never grants
  await attempt('rename_header', herald + '/printers/' + printerId + '/rename', {method: 'POST',
    credentials: 'include', headers: {'X-CSRF-Token': 'guess'}, body: new URLSearchParams({name: 'renamed-by-header'})});
  // JSON API with cookies
  await attempt('json', herald + '/account/tokens', {method: 'POST', credentials: 'include',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'stolen', scopes: ['printers:read']})});
  return out;
}"""


def test_open_octoprint_lands_on_an_origin_that_cannot_act_on_herald(layout):
    from playwright.sync_api import sync_playwright

    server, herald_url, rules = layout
    printer_id, _key = server.add_printer("Voron", STATUS, datetime.now(UTC))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=[*CHROMIUM_ARGS, f"--host-resolver-rules={rules}"])
        try:
            context = browser.new_context(bypass_csp=True)
            context.set_default_timeout(15_000)
            page = context.new_page()
            log_in(page, SimpleNamespace(url=herald_url))
            page.goto(f"{herald_url}/printers/{printer_id}")
            assert page.locator("#remote-access strong").first.inner_text() == "On."
            # no plugin holds a tunnel in this test: the page says so before the relayed page does
            assert page.locator("#relay-tunnel strong").inner_text() == "Not connected right now."
            with context.expect_page() as opened:
                page.locator("#open-octoprint").click()
            relayed = opened.value
            relayed.wait_for_load_state()
            found = re.match(r"^(http://own-[0-9a-f]{32}\.[^/]+)/$", relayed.url) or \
                re.match(r"^(http://127\.0\.0\.1:\d+)/own/own-[0-9a-f]{32}/$", relayed.url)
            assert found, relayed.url
            relay_origin, relay_page = found.group(1), relayed.url
            assert relay_origin != herald_url
            assert relayed.get_by_role("heading", name="Not connected yet").count() == 1

            # each origin holds only its own cookie (on another port of Herald's host, cookies are shared by
            # the host, as browsers ignore ports for them: the relay cookie is then the printer path's alone,
            # and forwarded requests drop Herald's cookies, owner_access.forwardable_cookies)
            herald_cookies = {c["name"] for c in context.cookies(herald_url + "/")}
            relay_cookies = {c["name"] for c in context.cookies(relay_page)}
            assert "herald_session" in herald_cookies and "herald_relay" not in herald_cookies
            assert "herald_relay" in relay_cookies
            if relay_origin.startswith("http://own-"):
                assert relay_cookies == {"herald_relay"}, relay_cookies
            (relay_cookie,) = [c for c in context.cookies(relay_page) if c["name"] == "herald_relay"]
            assert relay_cookie["httpOnly"] and not relay_cookie["domain"].startswith(".")

            result = relayed.evaluate(ATTACKS, [herald_url, printer_id])
            assert "herald_session" not in result["cookie"] and "herald_relay" not in result["cookie"], result
            assert "error" in result["read"], result  # CORS: Herald's answer is never readable there
            assert "error" in result["rename_header"], result  # the preflight is refused
            assert "error" in result["json"], result
            assert result["rename_simple"].get("type") == "opaque", result
            assert printer_name(server, printer_id) == "Voron"

            # a top-level form POST from the relayed origin (cookies go along where the site is the same)
            relayed.evaluate("""([herald, printerId]) => {
              const form = document.createElement('form');
              form.method = 'POST'; form.action = herald + '/printers/' + printerId + '/rename';
              const field = document.createElement('input'); field.name = 'name'; field.value = 'renamed-by-form';
              form.appendChild(field); document.body.appendChild(form); form.submit(); }""",
                             [herald_url, printer_id])
            relayed.wait_for_url(re.compile(re.escape(herald_url) + ".*/rename"))
            # refused by the CSRF check (same site: the cookie went along; another site: SameSite=Lax kept it)
            assert "CSRF token is missing" in relayed.locator("body").inner_text()
            assert printer_name(server, printer_id) == "Voron"
            with sqlite3.connect(server.db_path, timeout=10) as db:
                assert db.execute("SELECT COUNT(*) FROM access_tokens").fetchone()[0] == 0

            # the handoff link was good once
            again = context.new_page()
            handoff = again.goto(relay_page + "_herald/handoff?code=hrh_replayed")
            assert handoff.status == 401

            # control: from Herald's own page, the same request with the page's CSRF token does act,
            # so the checks above could have seen a rename
            page.goto(f"{herald_url}/printers/{printer_id}")
            status = page.evaluate("""async ([printerId]) => {
              const csrf = document.querySelector('input[name=csrf_token]').value;
              const r = await fetch('/printers/' + printerId + '/rename', {method: 'POST',
                body: new URLSearchParams({name: 'Voron 2', csrf_token: csrf})});
              return r.status; }""", [printer_id])
            assert status == 200 and printer_name(server, printer_id) == "Voron 2"
        finally:
            browser.close()
