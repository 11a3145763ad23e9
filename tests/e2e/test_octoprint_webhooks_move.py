"""End to end: moving from OctoPrint-Webhooks in a real OctoPrint with a real Herald.

OctoPrint's config.yaml holds OctoPrint-Webhooks hooks (the plugin itself is not
installed: it is on no index these machines reach; its settings stay in config.yaml
all the same). The Herald plugin's settings-page commands find them, create the same
webhooks in Herald through the printer key, a print sends what OctoPrint-Webhooks'
receivers expect (multipart for a body using @snapshot, @meta from OctoPrint's file
manager, a Print Started that says Printing), and the old hooks are turned off in
config.yaml.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_plugin_octoprint import HeraldOwner, gcode, herald, link, wait_for  # noqa: F401 - fixture
from tests.plugin.receiver import Receiver
from tests.support.octoprint import OctoPrintServer

pytestmark = pytest.mark.slow

DEFAULT_BODY = ('{\n  "deviceIdentifier":"@deviceIdentifier",\n  "apiSecret":"@apiSecret",\n  "topic":"@topic",\n'
                '  "message":"@message",\n  "extra":"@extra",\n  "state": "@state",\n  "job": "@job",\n'
                '  "progress": "@progress",\n  "currentZ": "@currentZ",\n  "offsets": "@offsets",\n'
                '  "meta": "@meta",\n  "currentTime": "@currentTime",\n  "snapshot": "@snapshot"\n}')


@pytest.fixture
def receiver():
    server = Receiver()
    for path in ("/default", "/meta"):
        server.routes[("POST", path)] = lambda request: (200, {"ok": True})
    yield server
    server.close()


def hooks(url: str) -> list[dict]:
    return [
        {"url": url + "/default", "http_method": "POST", "content_type": "JSON", "webhook_enabled": True,
         "headers": '{\n  "Content-Type": "application/json"\n}', "data": DEFAULT_BODY,
         "apiSecret": "abcdef123456", "deviceIdentifier": "Blane's Printer",
         "eventPrintStarted": True, "eventPrintDone": True, "eventPrintFailed": True, "eventPrintPaused": True,
         "eventUserActionNeeded": True, "eventError": True, "event_print_progress": False,
         "event_print_progress_interval": "50", "eventPrintStartedMessage": "Your print has started.",
         "oauth": False, "customEvents": []},
        {"url": url + "/meta", "http_method": "POST", "content_type": "JSON", "webhook_enabled": True,
         "headers": "{}", "data": json.dumps({"topic": "@topic", "state": "@state.text", "hash": "@meta.hash",
                                               "estimate": "@meta.analysis.estimatedPrintTime",
                                               "completion": "@progress.completion"}),
         "eventPrintStarted": True, "eventPrintDone": True, "customEvents": [{"name": "ZChange", "message": "z"}]},
    ]


@pytest.fixture
def octoprint(tmp_path: Path, herald, receiver):  # noqa: F811 - the herald fixture
    server = OctoPrintServer(tmp_path / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "Move Prusa", "interval_printing": 5, "interval_idle": 10})
    server.prepare()
    config_path = server.basedir / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["plugins"]["webhooks"] = {"hooks": hooks(receiver.url), "settings_version": 2}
    config_path.write_text(yaml.safe_dump(config))
    server.start()
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()


def command(octoprint: OctoPrintServer, name: str, **data) -> dict:
    """A plugin command as the settings page runs it (202, then its result)."""
    entry = octoprint.herald_command(name, **data)
    assert entry["status"] == "done", entry
    return entry["result"]


def test_move_from_octoprint_webhooks(herald, octoprint: OctoPrintServer, receiver: Receiver):  # noqa: F811
    owner = HeraldOwner(herald.url).login()
    found = command(octoprint, "webhooks_find")["hooks"]
    assert [(h["url"], h["enabled"]) for h in found] == [(receiver.url + "/default", True),
                                                          (receiver.url + "/meta", True)]
    link(octoprint, owner)
    answer = command(octoprint, "webhooks_import")
    assert [r["status"] for r in answer["hooks"]] == ["created", "created"]
    assert answer["hooks"][1]["not_carried_over"] == ["custom events (ZChange): Herald sends only its own event types"]
    targets = owner.session.get(herald.url + "/api/v1/webhooks", timeout=10).json()["targets"]
    assert [(t["url"], t["device_identifier"], t["events"]) for t in targets] == [
        (receiver.url + "/default", "Blane's Printer", ["print.started", "print.done", "print.failed",
                                                         "print.paused", "printer.user_action_needed",
                                                         "printer.error"]),
        (receiver.url + "/meta", "", ["print.started", "print.done"])]

    octoprint.upload_and_print("move.gcode", gcode(40))
    wait_for(lambda: len(receiver.of("POST", "/meta")) >= 2 and len(receiver.of("POST", "/default")) >= 2, 120,
             "Herald to deliver Print Started and Print Done to both webhooks", interval=0.5)
    started, done = receiver.of("POST", "/default")[:2]
    assert started.headers["Content-Type"].startswith("multipart/form-data")  # @snapshot, no picture
    fields = {k: v.decode() for k, v in started.parts().items()}
    assert "snapshot" not in fields
    assert (fields["topic"], fields["message"], fields["deviceIdentifier"], fields["apiSecret"]) == (
        "Print Started", "Your print has started.", "Blane's Printer", "abcdef123456")
    assert json.loads(fields["state"])["text"] == "Printing"  # not "Starting"
    assert json.loads(fields["extra"])["name"] == "move.gcode"
    meta = json.loads(fields["meta"])  # OctoPrint's file manager metadata of the file
    # (OctoPrint analyses an uploaded file in the background and not while printing: no analysis yet.)
    assert meta["hash"] == octoprint.api("GET", "/api/files/local/move.gcode").json()["hash"]
    assert {k: v.decode() for k, v in done.parts().items()}["topic"] == "Print Done"
    meta_started, meta_done = (r.json() for r in receiver.of("POST", "/meta")[:2])
    assert meta_started["state"] == "Printing" and meta_started["completion"] == 0.0
    assert meta_started["hash"] == meta["hash"] and meta_done["topic"] == "Print Done"

    # The old hooks are turned off in OctoPrint's settings file.
    turned = command(octoprint, "webhooks_turn_off", indexes=[0, 1])
    assert turned["turned_off"] == [0, 1]
    time.sleep(0.5)
    on_disk = yaml.safe_load((octoprint.basedir / "config.yaml").read_text())["plugins"]["webhooks"]["hooks"]
    assert [h["webhook_enabled"] for h in on_disk] == [False, False]
    assert [h["enabled"] for h in command(octoprint, "webhooks_find")["hooks"]] == [False, False]


def test_move_on_the_settings_page_in_chromium(herald, octoprint: OctoPrintServer, receiver: Receiver):  # noqa: F811
    """The user's way: the settings page lists the hooks, creates them in Herald, turns the old ones off."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_plugin_octoprint import CHROMIUM_ARGS
    from tests.support.octoprint import ADMIN_PASSWORD, ADMIN_USER

    owner = HeraldOwner(herald.url).login()
    link(octoprint, owner)
    artifacts = Path(os.environ.get("HERALD_TEST_ARTIFACTS", "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.set_default_timeout(30_000)
            page.goto(octoprint.url + "/")
            page.fill("#login-user", ADMIN_USER)
            page.fill("#login-password", ADMIN_PASSWORD)
            page.click("#login-button")
            page.wait_for_selector("#navbar_show_settings", state="visible", timeout=60_000)
            page.click("#navbar_show_settings")
            page.wait_for_selector("#settings_dialog", state="visible")
            page.click("#settings_plugin_herald_link a")
            page.wait_for_selector("#herald_owh", state="visible")
            rows = page.locator("#herald_owh_hooks tbody tr")
            assert rows.count() == 2
            assert receiver.url + "/default" in rows.nth(0).inner_text()
            assert "not yet" in rows.nth(0).inner_text()
            page.click("#herald_owh_import")
            page.wait_for_selector("#herald_owh_hooks >> text=created as", timeout=30_000)
            assert "Not carried over: custom events (ZChange)" in rows.nth(1).inner_text()
            page.screenshot(path=str(artifacts / "plugin-settings-octoprint-webhooks.png"))
            page.click("#herald_owh_turn_off")
            page.click(".modal-footer >> text=Turn off")  # OctoPrint's confirmation dialog
            page.wait_for_selector("#herald_message >> text=2 old hooks turned off.", timeout=30_000)
        finally:
            browser.close()
    targets = owner.session.get(herald.url + "/api/v1/webhooks", timeout=10).json()["targets"]
    assert [t["url"] for t in targets] == [receiver.url + "/default", receiver.url + "/meta"]
    on_disk = yaml.safe_load((octoprint.basedir / "config.yaml").read_text())["plugins"]["webhooks"]["hooks"]
    assert [h["webhook_enabled"] for h in on_disk] == [False, False]
