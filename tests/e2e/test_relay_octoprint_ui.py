"""OctoPrint's own web UI in real Chromium through the relay, the owner's way (docs/relay.md).

The owner logs in to Herald, presses "Open OctoPrint" on the printer's page, and the browser itself
follows the handoff to the printer's relayed host ``own-<hex>.relay.test:<Herald's port>`` (Chromium
maps ``*.relay.test`` to 127.0.0.1, where Herald listens). There, in OctoPrint's pages: log in, connect
the virtual printer from the Connection panel, upload a G-code from the Files panel and print it from
the file list, and watch the Temperature tab's values change while the state says Printing. Those
values come over OctoPrint's push socket (SockJS over a WebSocket), which passes the relay on the
relayed host like every other request of the page.

A real Herald under hypercorn and a real OctoPrint with the virtual printer and the plugin (relay on)
come from tests/e2e/test_relay_seams.py's fixtures; only Herald's relay URL differs here: it keeps
Herald's port, so the relayed host names lead the browser back to this Herald.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.test_plugin_octoprint import wait_for
from tests.e2e.test_relay_octoprint import EMAIL, PASSWORD
from tests.e2e.test_relay_seams import RELAY_HOST, echo, linked, octoprint  # noqa: F401  (fixtures)
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, log_in
from tests.support.octoprint import ADMIN_PASSWORD, ADMIN_USER, OctoPrintServer, free_port
from tests.support.server import LiveServer, serving_with_admin

pytestmark = pytest.mark.slow

DOCS_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "images" / "relay-octoprint-ui.png"
# Heats the hotend (no waiting: no M109/M190), then dwells long enough to watch it heat while printing.
GCODE = "M104 S210\nM140 S60\nG28\nG1 X20 Y20 F3000\n" + "G4 P500\n" * 600 + "M104 S0\nM140 S0\n"
# "M104 S210" heats the virtual hotend at 10 degrees a second: its actual temperature keeps changing for
# some 19 s, well within the print (600 dwells of half a second).
UI_TIMEOUT = 60_000  # ms: a loaded machine runs OctoPrint, Herald and Chromium side by side


@pytest.fixture
def herald(tmp_path: Path):
    """Herald whose relay host names carry its own port: http://own-<hex>.relay.test:<port>/ is this Herald."""
    port = free_port()
    with serving_with_admin(tmp_path / "herald", port, EMAIL, PASSWORD,
                            {"HERALD_RELAY_URL": f"http://{RELAY_HOST}:{port}"}) as server:
        yield server


@pytest.fixture
def artifacts() -> Path:
    path = Path(os.environ.get("HERALD_TEST_ARTIFACTS", "test-artifacts")) / "relay-octoprint-ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _disconnected(server: OctoPrintServer) -> None:
    """The printer starts disconnected, so connecting it is the UI's doing."""
    response = server.api("POST", "/api/connection", json={"command": "disconnect"})
    assert response.status_code == 204, response.text
    wait_for(lambda: server.api("GET", "/api/connection").json()["current"]["state"] in ("Closed", "Offline"),
             30, "the virtual printer to disconnect")


def _pushed_temperatures(payload: str) -> list[float]:
    """The hotend's actual temperatures in one SockJS frame (``a["{...}"]``) of OctoPrint's push socket."""
    if not isinstance(payload, str) or not payload.startswith("a"):
        return []
    found = []
    for message in json.loads(payload[1:]):
        data = json.loads(message) if isinstance(message, str) else message
        for entry in (data.get("current") or {}).get("temps") or []:
            if isinstance((entry.get("tool0") or {}).get("actual"), (int, float)):
                found.append(entry["tool0"]["actual"])
    return found


def _shown_temperature(page) -> float | None:
    """The hotend's actual temperature as the Temperature tab shows it (e.g. "73.4°C")."""
    text = page.locator("#temperature-table td.temperature_actual").first.inner_text()
    found = re.search(r"-?\d+(\.\d+)?", text)
    return float(found.group(0)) if found else None


def test_octoprints_own_ui_through_the_relay_prints_and_shows_live_temperatures(
        linked, herald: LiveServer, octoprint: OctoPrintServer, artifacts: Path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    _owner, printer_id = linked
    _disconnected(octoprint)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP *.{RELAY_HOST} 127.0.0.1"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
            context.set_default_timeout(UI_TIMEOUT)
            # expect() has its own default of 5 s, which a busy machine broke once (OctoPrint's UI
            # filled its state string later, over the relayed push socket): the same bound as the rest
            expect.set_options(timeout=UI_TIMEOUT)
            page = context.new_page()
            log_in(page, SimpleNamespace(url=herald.url), EMAIL, PASSWORD)
            page.goto(f"{herald.url}/printers/{printer_id}")
            with context.expect_page() as opened:
                page.locator("#open-octoprint").click()
            ui = opened.value
            sockets, pushed = [], []  # every WebSocket the page opens; (its URL, a hotend temperature) pushed

            def on_socket(socket) -> None:
                sockets.append(socket.url)
                socket.on("framereceived", lambda frame: pushed.extend(
                    (socket.url, value) for value in _pushed_temperatures(frame)))

            ui.on("websocket", on_socket)

            # the browser followed the handoff itself, onto the printer's own relayed host, and OctoPrint
            # (reached through the tunnel) sent it to its login page there
            ui.wait_for_url(re.compile(rf"^http://own-[0-9a-f]{{32}}\.{re.escape(RELAY_HOST)}:{herald.port}/"))
            relayed = re.match(r"^(http://[^/]+)/", ui.url).group(1)
            assert relayed != herald.url
            assert "herald_relay" in {c["name"] for c in context.cookies(relayed + "/")}
            expect(ui.locator("#login-user")).to_be_visible()

            ui.locator("#login-user").fill(ADMIN_USER)
            ui.locator("#login-password").fill(ADMIN_PASSWORD)
            ui.locator("#login-button").click()
            state = ui.locator("[data-test-id=state-string]")
            expect(state).to_have_text(re.compile("Offline|Closed"))
            assert ui.url.startswith(relayed + "/")
            expect(ui.locator("[data-test-id=login-menu-title]")).to_have_text(ADMIN_USER)

            # the push socket is OctoPrint's SockJS WebSocket on the relayed host, through Herald's port
            ws_host = "ws://" + relayed.split("://", 1)[1]
            wait_for(lambda: any(url.startswith(ws_host + "/sockjs/") and url.endswith("/websocket")
                                 for url in sockets), 60, "the push socket on the relayed host")

            # Connection panel: the virtual port, Connect
            ports = ui.locator("#connection_ports")
            if not ports.is_visible():
                ui.locator("[data-test-id=sidebar-connection-toggle]").click()
            expect(ports).to_be_enabled()
            ports.select_option("VIRTUAL")
            ui.locator("#printer_connect").click()
            expect(state).to_have_text("Operational")

            # Files panel: upload (through the relay), then "Load and Print" from the file list
            ui.locator("#gcode_upload").set_input_files(
                files=[{"name": "relay-ui.gcode", "mimeType": "text/x-gcode", "buffer": GCODE.encode()}])
            entry = ui.locator("#files .entry", has_text="relay-ui.gcode")
            expect(entry).to_be_visible()
            entry.locator(".btn-files-print").click()
            expect(state).to_have_text("Printing")
            expect(ui.locator("[data-test-id=selected-file-string]")).to_have_text("relay-ui.gcode")

            # the Temperature tab: the hotend's target set by the file, its actual value climbing as the
            # push socket delivers it
            ui.locator('a[href="#temp"]').click()
            hotend_target = ui.locator("#temperature-table td.temperature_target input").first
            expect(hotend_target).to_have_attribute("placeholder", re.compile(r"^210"))
            seen = []

            def another_value() -> bool:
                value = _shown_temperature(ui)
                if value is not None and value not in seen:
                    seen.append(value)
                return len(seen) >= 3

            wait_for(another_value, 90, "the shown hotend temperature to change (three values)")
            assert seen == sorted(seen), seen  # heating: every new value is higher
            # each value shown arrived over the push socket (OctoPrint shows one decimal), and every
            # temperature pushed to the page came through the relayed host
            wait_for(lambda: all(any(abs(t - v) <= 0.051 for _url, t in pushed) for v in seen), 30,
                     f"the shown values {seen} among those pushed over the socket")
            assert {url.split("/sockjs/")[0] for url, _t in pushed} == {ws_host}, sockets
            assert state.inner_text() == "Printing"
            assert octoprint.job()["state"] == "Printing"  # OctoPrint itself agrees
            wait_for(lambda: (_shown_temperature(ui) or 0) > 100, 90, "the hotend well on its way to 210")
            ui.screenshot(path=str(artifacts / "relay-octoprint-ui.png"))
            if os.environ.get("HERALD_UPDATE_DOCS_SCREENSHOT"):
                shutil.copy(artifacts / "relay-octoprint-ui.png", DOCS_PICTURE)
        finally:
            browser.close()
    octoprint.api("POST", "/api/job", json={"command": "cancel"})
