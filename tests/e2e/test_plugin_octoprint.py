"""End to end: a real OctoPrint with its Virtual Printer and this plugin, and a real Herald.

The printer is linked through the device flow (the owner approves over HTTP, or in
Chromium from the plugin's settings page), prints small G-code files, and Herald's
``GET /api/v1/printers/<id>`` and ``GET /api/v1/printers/<id>/events`` (read with a personal
access token, as a user's script would) are checked as a user would see them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.octoprint import ADMIN_PASSWORD, ADMIN_USER, OctoPrintServer, free_port
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow

EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def gcode(moves: int, *, length: float = 30.0, feed: int = 600) -> str:
    """A short print: heaters set without waiting (M104/M140), then ``moves`` G1 moves.

    The Virtual Printer takes a tenth of a move's real duration: 30 mm at F600 is 0.3 s.
    """
    lines = ["; Herald end-to-end test", "G21", "G90", "M82", "M104 S210", "M140 S60", "G28",
             "G92 E0", "G1 Z0.2 F600"]
    for i in range(moves):
        x = 10 + (i % 2) * length
        lines.append(f"G1 X{x:.1f} Y{10 + i % 40:.1f} E{0.4 * (i + 1):.2f} F{feed}")
        if i % 10 == 9:
            lines.append(f"G1 Z{0.2 + 0.2 * (i // 10 + 1):.1f} F600")
    lines += ["M104 S0", "M140 S0", "M84", "; end"]
    return "\n".join(lines) + "\n"


class HeraldOwner:
    """A logged-in Herald user over plain HTTP, as a browser would be."""

    _CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def _csrf(self, path: str) -> str:
        response = self.session.get(self.base_url + path, timeout=10)
        match = self._CSRF.search(response.text)
        assert match, f"no CSRF token on {path} ({response.status_code})"
        return match.group(1)

    def login(self) -> HeraldOwner:
        token = self._csrf("/login")
        response = self.session.post(self.base_url + "/login", allow_redirects=False, timeout=10,
                                     data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 302, response.text
        return self

    def approve(self, user_code: str) -> None:
        token = self._csrf(f"/link?user_code={user_code}")
        response = self.session.post(self.base_url + "/link/decide", timeout=10,
                                     data={"user_code": user_code, "decision": "approve", "csrf_token": token})
        assert response.status_code == 200, response.text

    def rotate_key(self, printer_id: str) -> str:
        """The web UI's "new key" button: the old key stops working; the new one is shown once."""
        token = self._csrf(f"/printers/{printer_id}")
        response = self.session.post(f"{self.base_url}/printers/{printer_id}/rotate", timeout=10,
                                     data={"csrf_token": token})
        assert response.status_code == 200, response.text
        match = re.search(r"hpk_[A-Za-z0-9_\-]+", response.text)
        assert match, "no printer key on the page"
        return match.group(0)

    def printer(self, printer_id: str) -> dict:
        response = self.session.get(f"{self.base_url}/api/v1/printers/{printer_id}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def script(self) -> EventReader:
        """A personal access token (read-only), made with the session as the account page does."""
        csrf = self._csrf("/account")
        response = self.session.post(self.base_url + "/api/v1/tokens", timeout=10,
                                     json={"name": "e2e events script", "scopes": ["printers:read"]},
                                     headers={"X-CSRF-Token": csrf})
        assert response.status_code == 201, response.text
        return EventReader(self.base_url, response.json()["token"])


class EventReader:
    """A user's script reading a printer's events with its personal token, page by page."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def events(self, printer_id: str) -> list[dict]:
        """Every event Herald holds for the printer, in arrival order (the API gives newest first)."""
        newest_first: list[dict] = []
        before = None
        while True:
            response = requests.get(f"{self.base_url}/api/v1/printers/{printer_id}/events", timeout=10,
                                    params={"before": before} if before else {}, headers=self.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["events"]) <= 50  # the default page size
            newest_first += page["events"]
            before = page["next"]
            if before is None:
                return newest_first[::-1]


@pytest.fixture
def herald(tmp_path: Path):
    server = LiveServer(data_dir=tmp_path / "herald", port=free_port())
    server.data_dir.mkdir(parents=True)
    made = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", EMAIL,
                           "--password", PASSWORD], env=server.environ(), capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    server.start()
    yield server
    server.stop()


@pytest.fixture
def octoprint(tmp_path: Path, herald: LiveServer):
    server = OctoPrintServer(tmp_path / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "E2E Prusa", "interval_printing": 5, "interval_idle": 10})
    server.start()
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()
        artifacts = os.environ.get("HERALD_TEST_ARTIFACTS")
        if artifacts and server.log_path.exists():
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            (Path(artifacts) / f"octoprint-{server.port}.log").write_text(server.log())


def plugin_state(octoprint: OctoPrintServer) -> dict:
    response = octoprint.api("GET", "/api/plugin/herald")
    assert response.status_code == 200, response.text
    return response.json()


def link(octoprint: OctoPrintServer, owner: HeraldOwner) -> str:
    """The device flow: the plugin asks, the owner approves over HTTP, the plugin stores the key."""
    started = octoprint.herald_command("link")
    assert started["status"] == "done", started
    grant = started["result"]
    assert grant["status"] == "waiting" and grant["user_code"]
    assert grant["verification_uri_complete"].startswith(owner.base_url)
    owner.approve(grant["user_code"])
    state = wait_for(lambda: (s := plugin_state(octoprint))["linked"] and s, 60, "the plugin to be linked")
    assert state["printer_id"]
    return state["printer_id"]


def one_print(events: list[dict]) -> list[str]:
    """Event types with progress folded to ``print.progress*`` after checking it is 1..99 in order."""
    progress = [e["payload"]["progress"] for e in events if e["type"] == "print.progress"]
    assert progress == list(range(1, 100)), progress
    folded = []
    for event in events:
        if event["type"] == "print.progress":
            if not folded or folded[-1] != "print.progress*":
                folded.append("print.progress*")
        else:
            folded.append(event["type"])
    return folded


def status_of(owner: HeraldOwner, printer_id: str) -> dict:
    return owner.printer(printer_id)["status"] or {}


def wait_job_done(octoprint: OctoPrintServer, timeout: float) -> None:
    wait_for(lambda: octoprint.job()["state"].startswith("Printing"), 30, "the print to start")
    wait_for(lambda: octoprint.job()["state"] == "Operational", timeout, "the print to end")


def test_link_print_and_publish(herald: LiveServer, octoprint: OctoPrintServer):
    owner = HeraldOwner(herald.url).login()
    script = owner.script()
    printer_id = link(octoprint, owner)
    seen = wait_for(lambda: owner.printer(printer_id)["status"], 30, "a first status")
    assert seen["state_id"] == "operational"

    octoprint.upload_and_print("e2e.gcode", gcode(40))
    during = []

    def finished():
        printer = owner.printer(printer_id)
        status = printer["status"] or {}
        if status.get("state_id") == "printing":
            during.append(status)
        return status.get("state_id") == "operational" and (status.get("last_job") or {}).get("result") == "completed"

    wait_for(finished, 120, "Herald to show the finished print", interval=0.3)
    printing = [s for s in during if s["job"]["progress"] is not None and 0 < s["job"]["progress"] < 100]
    assert printing, f"no Printing status with progress was seen: {during}"
    sample = printing[len(printing) // 2]  # mid-print: heaters on (the file ends with M104 S0)
    assert sample["state"] == "Printing"
    assert sample["job"]["file"] == "e2e.gcode"
    assert sample["job"]["print_time"] is not None
    assert isinstance(sample["temperatures"]["tool0"]["actual"], float)
    assert sample["temperatures"]["tool0"]["target"] == 210.0
    assert sample["temperatures"]["bed"]["target"] == 60.0
    assert len({s["job"]["progress"] for s in printing}) >= 2, "progress did not advance in Herald"

    final = owner.printer(printer_id)
    assert final["online"] is True and final["linked"] is True
    assert final["status"]["state"] == "Operational"
    assert final["status"]["last_job"]["file"] == "e2e.gcode"
    assert final["status"]["last_job"]["duration"] >= 1

    wait_for(lambda: plugin_state(octoprint)["queued_events"] == 0, 30, "the outbox to drain")
    events = script.events(printer_id)
    assert len({e["id"] for e in events}) == len(events)
    assert one_print(events) == ["print.started", "print.progress*", "print.done"]
    assert events[0]["payload"]["name"] == "e2e.gcode"

    # A filament change: M600, then the firmware repeats "busy: paused for user" every
    # second until the prompt is answered (M876). One occurrence, one event.
    octoprint.api("POST", "/api/printer/command", json={"commands": ["M600"]})
    time.sleep(3.5)
    octoprint.api("POST", "/api/printer/command", json={"commands": ["M876 S0"]})
    wait_for(lambda: len(script.events(printer_id)) > len(events), 30, "the user action event")
    time.sleep(2)  # a repeated event, were one sent, would have arrived by now
    later = script.events(printer_id)[len(events):]
    serial_log = (octoprint.basedir / "logs" / "serial.log").read_text(errors="replace")
    assert serial_log.count("paused for user") >= 2, "the firmware did not repeat its busy line"
    assert [e["type"] for e in later] == ["printer.user_action_needed"]
    assert later[0]["payload"]["reason"] == "filament_change"

    # The owner makes a new key in Herald: the old one gets 401, publishing stops and the
    # settings page asks to relink; pasting the new key (the manual path) resumes it.
    new_key = owner.rotate_key(printer_id)
    state = wait_for(lambda: (s := plugin_state(octoprint))["needs_relink"] and s, 30, "the plugin to see the 401")
    assert "link the printer again" in state["last_error"] and state["publishing"] is False
    refused = octoprint.herald_command("test")
    assert refused["status"] == "failed" and "link the printer again" in refused["error"]
    time.sleep(1.1)  # last_seen has one-second steps at worst
    seen_before = owner.printer(printer_id)["last_seen"]
    verified = octoprint.herald_command("verify", printer_key=new_key)
    assert verified["status"] == "done", verified
    assert verified["result"]["name"] == "E2E Prusa"
    wait_for(lambda: owner.printer(printer_id)["last_seen"] > seen_before, 30,
             "Herald to hear from the printer with the pasted key")
    state = plugin_state(octoprint)
    assert state["needs_relink"] is False and state["last_error"] is None and state["publishing"] is True


def test_herald_down_mid_print_then_a_cancel(herald: LiveServer, octoprint: OctoPrintServer):
    owner = HeraldOwner(herald.url).login()
    script = owner.script()
    printer_id = link(octoprint, owner)

    octoprint.upload_and_print("outage.gcode", gcode(60))
    wait_for(lambda: (status_of(owner, printer_id).get("job") or {}).get("progress") or 0, 60,
             "Herald to see the print progress")
    herald.stop()
    try:
        wait_for(lambda: plugin_state(octoprint)["queued_events"] > 0, 30, "events to queue up while Herald is down")
        wait_job_done(octoprint, 120)
        down_state = plugin_state(octoprint)
        assert down_state["last_error"] and down_state["queued_events"] > 0
    finally:
        herald.start()
    # Backoff is capped: once Herald is back, the plugin catches up on its own.
    wait_for(lambda: plugin_state(octoprint)["queued_events"] == 0, 90, "the outbox to drain after the outage")
    wait_for(lambda: (status_of(owner, printer_id).get("last_job") or {}).get("result") == "completed",
             60, "Herald to show the completed print")
    events = script.events(printer_id)
    assert one_print(events) == ["print.started", "print.progress*", "print.done"]
    assert len({e["id"] for e in events}) == len(events)
    assert plugin_state(octoprint)["last_error"] is None

    # A cancel: OctoPrint fires PrintCancelled and PrintFailed; Herald gets one print.cancelled.
    octoprint.upload_and_print("cancel-me.gcode", gcode(300))
    wait_for(lambda: (octoprint.job()["progress"]["completion"] or 0) > 2, 60, "the long print to get going")
    response = octoprint.api("POST", "/api/job", json={"command": "cancel"})
    assert response.status_code == 204, response.text
    wait_for(lambda: octoprint.job()["state"] == "Operational", 60, "the cancel to finish")
    wait_for(lambda: (status_of(owner, printer_id).get("last_job") or {}).get("result") == "cancelled",
             60, "Herald to show the cancelled print")
    wait_for(lambda: plugin_state(octoprint)["queued_events"] == 0, 30, "the outbox to drain")
    time.sleep(2)  # a second terminal event, were one sent, would have arrived by now
    second = script.events(printer_id)[len(events):]
    types = [e["type"] for e in second]
    assert types[0] == "print.started"
    assert types.count("print.cancelled") == 1 and types[-1] == "print.cancelled"
    assert "print.failed" not in types and "print.done" not in types
    assert owner.printer(printer_id)["status"]["last_job"]["file"] == "cancel-me.gcode"


def test_settings_page_in_chromium_links_the_printer(herald: LiveServer, octoprint: OctoPrintServer):
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ["HERALD_TEST_ARTIFACTS"])
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.set_default_timeout(30_000)
            page = context.new_page()

            # The owner is logged in to Herald in this browser, as they would be.
            page.goto(herald.url + "/login")
            page.fill("#email", EMAIL)
            page.fill("#password", PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_load_state()

            page.goto(octoprint.url + "/")
            page.fill("#login-user", ADMIN_USER)
            page.fill("#login-password", ADMIN_PASSWORD)
            page.click("#login-button")
            page.wait_for_selector("#navbar_show_settings", state="visible", timeout=60_000)
            page.click("#navbar_show_settings")
            page.wait_for_selector("#settings_dialog", state="visible")
            page.click("#settings_plugin_herald_link a")
            page.wait_for_selector("#herald_link_button", state="visible")
            page.wait_for_selector("#herald_settings >> text=Not linked.")
            assert page.input_value("#herald_url") == herald.url
            page.screenshot(path=str(artifacts / "plugin-settings.png"))

            with context.expect_page() as opened:
                page.click("#herald_link_button")
            approval = opened.value
            # The tab opens blank (so no popup blocker stops it) and then goes to Herald.
            approval.wait_for_url(re.compile(re.escape(herald.url) + r"/link\b.*"))
            approval.wait_for_load_state()
            code = page.text_content("#herald_user_code")
            assert code and code.replace("-", "") in approval.content().replace("-", "")
            page.screenshot(path=str(artifacts / "plugin-settings-code.png"))
            approval.click("button[name=decision][value=approve]")
            approval.wait_for_load_state()

            page.wait_for_selector("#herald_settings >> text=Linked and publishing.", timeout=60_000)
            page.wait_for_selector("#herald_settings >> text=Last publish:", timeout=30_000)
            page.screenshot(path=str(artifacts / "plugin-settings-linked.png"))
        finally:
            browser.close()

    state = plugin_state(octoprint)
    assert state["linked"] is True and state["printer_id"]
    owner = HeraldOwner(herald.url).login()
    printer = owner.printer(state["printer_id"])
    assert printer["name"] == "E2E Prusa"
    assert printer["status"]["state_id"] == "operational"


def test_queued_events_survive_an_octoprint_restart(herald: LiveServer, octoprint: OctoPrintServer):
    owner = HeraldOwner(herald.url).login()
    script = owner.script()
    printer_id = link(octoprint, owner)
    wait_for(lambda: plugin_state(octoprint)["last_success"], 30, "a first publish")
    herald.stop()
    try:
        octoprint.api("POST", "/api/printer/command", json={"commands": ["M600"]})
        time.sleep(1.5)
        octoprint.api("POST", "/api/printer/command", json={"commands": ["M876 S0"]})
        wait_for(lambda: plugin_state(octoprint)["queued_events"] == 1, 30, "the event to wait in the outbox")
        octoprint.stop()
        octoprint.start()  # same basedir: same settings, key and outbox
    finally:
        herald.start()
    wait_for(lambda: plugin_state(octoprint)["queued_events"] == 0, 60, "the outbox to drain after the restart")
    assert plugin_state(octoprint)["linked"] is True
    assert [e["type"] for e in script.events(printer_id)] == ["printer.user_action_needed"]
