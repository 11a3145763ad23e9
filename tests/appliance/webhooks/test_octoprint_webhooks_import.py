"""Moving from OctoPrint-Webhooks: its hooks, read from an OctoPrint settings file by OctoPrint's
own settings code and the plugin's reader, become Herald webhooks through the printer-key API."""

from __future__ import annotations

import json

import pytest
import yaml
from octoprint_herald import webhooks_import

from appliance.webhooks import targets as service
from appliance.webhooks.models import WebhookTarget
from tests.support.octoprint import import_octoprint_quietly
from tests.support.printers import bearer, make_printer
from tests.support.users import make_user
from tests.support.webhooks import store_event

HOOKS = [
    {   # OctoPrint-Webhooks' defaults, a device identifier, a secret and its own message texts
        "url": "RECEIVER/default", "http_method": "POST", "content_type": "JSON",
        "headers": '{\n  "Content-Type": "application/json"\n}',
        "data": '{\n  "deviceIdentifier":"@deviceIdentifier",\n  "topic":"@topic",\n  "message":"@message",\n'
                '  "extra":"@extra",\n  "meta": "@meta",\n  "snapshot": "@snapshot"\n}',
        "apiSecret": "abcdef123456", "deviceIdentifier": "Blane's Printer", "webhook_enabled": True,
        "eventPrintStarted": True, "eventPrintDone": True, "eventPrintFailed": True, "eventPrintPaused": False,
        "eventUserActionNeeded": True, "eventError": False, "event_print_progress": True,
        "event_print_progress_interval": "25",
        "eventPrintStartedMessage": "Started @job.file.name", "eventPrintDoneMessage": "Your print is done.",
        "eventPrintProgressMessage": "Your print is @percentCompleteMilestone % complete.",
        "oauth": False, "oauth_url": "", "oauth_headers": "{}", "oauth_data": "{}",
        "oauth_http_method": "POST", "oauth_content_type": "JSON", "test_event": "PrintStarted",
        "customEvents": [],
    },
    {   # form encoding with OAuth: @access_token comes from the token response
        "url": "https://api.example.com/v1/prints", "http_method": "PUT", "content_type": "FORM",
        "headers": '{"Authorization": "Bearer @access_token"}', "data": '{"topic": "@topic"}',
        "apiSecret": "", "deviceIdentifier": "", "webhook_enabled": True,
        "eventPrintStarted": False, "eventPrintDone": True, "eventPrintFailed": True, "eventPrintPaused": True,
        "eventUserActionNeeded": False, "eventError": True, "event_print_progress": False,
        "event_print_progress_interval": "50",
        "oauth": True, "oauth_url": "https://auth.example.com/token", "oauth_http_method": "POST",
        "oauth_content_type": "FORM", "oauth_headers": "{}",
        "oauth_data": '{"client_id": "myClient", "client_secret": "mySecret", "grant_type": "client_credentials"}',
    },
    {   # what Herald cannot carry over
        "url": "https://hooks.example.com/custom", "http_method": "POST", "content_type": "JSON",
        "headers": '{"Host": "other.example.com"}', "data": '{"topic": "@topic"}', "webhook_enabled": False,
        "eventPrintStarted": True, "customEvents": [{"name": "ZChange", "message": "z!"}], "event_cooldown": 30,
    },
    {   # a template Herald refuses (an @param that does not exist, without OAuth)
        "url": "https://hooks.example.com/broken", "http_method": "POST", "content_type": "JSON",
        "headers": "{}", "data": '{"who": "@nosuchparam"}', "eventPrintDone": True,
    },
]


@pytest.fixture
def settings_file(tmp_path, receiver):
    """config.yaml of an OctoPrint with OctoPrint-Webhooks' hooks, read by OctoPrint's Settings."""
    import_octoprint_quietly()
    from octoprint.settings import Settings

    hooks = json.loads(json.dumps(HOOKS).replace("RECEIVER", receiver.url))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"plugins": {"webhooks": {"hooks": hooks, "settings_version": 2}}}))
    return Settings(configfile=str(config), basedir=str(tmp_path)), config


async def test_import_from_an_octoprint_settings_file(app, herald, client, receiver, settings_file):
    octoprint_settings, config_path = settings_file
    owner = await make_user("admin@example.com", admin=True)
    printer, key = await make_printer(herald, owner)
    found = webhooks_import.find_hooks(octoprint_settings.get(webhooks_import.PLUGIN_PATH))
    assert [h["url"] for h in webhooks_import.summary(found)] == [receiver.url + "/default",
                                                                  *(h["url"] for h in HOOKS[1:])]
    assert webhooks_import.summary(found)[0]["events"] == ["Print Started", "Print Done", "Print Failed",
                                                           "User Action Needed", "Print Progress"]

    response = await client.post("/api/v1/printer/webhooks/import", json={"hooks": found}, headers=bearer(key))
    assert response.status_code == 200, await response.get_data()
    answer = await response.get_json()
    assert (answer["created"], answer["already_imported"], answer["not_imported"]) == (3, 0, 1)
    results = answer["hooks"]
    assert [r["status"] for r in results] == ["created", "created", "created", "not_imported"]
    assert results[0]["not_carried_over"] == [] and results[1]["not_carried_over"] == []
    assert results[2]["not_carried_over"] == [
        "header Host (Herald sets it itself)",
        "custom events (ZChange): Herald sends only its own event types",
        "event cooldown of 30 s: Herald sends every event"]
    assert "@nosuchparam" in results[3]["error"]

    first, second, third = await WebhookTarget.filter(owner_id=owner.id).order_by("id")
    assert (first.url, first.method, first.content_type, first.headers, first.body) == (
        receiver.url + "/default", "POST", "json", found[0]["headers"], found[0]["data"])
    assert first.events == ["print.started", "print.done", "print.failed", "printer.user_action_needed",
                            "print.progress"]
    assert first.progress_step == 25 and first.device_identifier == "Blane's Printer"
    assert herald.secret_box.decrypt(first.api_secret) == "abcdef123456"
    assert first.messages == {"print.started": "Started @job.file.name"}  # the defaults need not be stored
    assert first.printer_ids == [printer.id] and first.enabled is True
    assert (second.method, second.content_type, second.oauth_enabled, second.oauth_url, second.oauth_content_type) == (
        "PUT", "form", True, "https://auth.example.com/token", "form")
    assert json.loads(herald.secret_box.decrypt(second.oauth_body))["client_secret"] == "mySecret"
    assert third.enabled is False  # it was off in OctoPrint-Webhooks

    # Importing again creates nothing new.
    again = await (await client.post("/api/v1/printer/webhooks/import", json={"hooks": found},
                                     headers=bearer(key))).get_json()
    assert [r["status"] for r in again["hooks"]] == ["already_imported"] * 3 + ["not_imported"]
    assert await WebhookTarget.filter(owner_id=owner.id).count() == 3

    # The imported hook sends what OctoPrint-Webhooks sent: multipart (it uses @snapshot), its message.
    await store_event(herald, printer, "print.started", payload={"name": "benchy.gcode"}, printer_data={
        "job": {"file": {"name": "benchy.gcode"}}, "meta": {"hash": "abc"}})
    (got,) = await receiver.wait_for(1)
    assert got.content_type == "multipart/form-data"
    for field, value in [("deviceIdentifier", "Blane's Printer"), ("topic", "Print Started"),
                         ("message", "Started benchy.gcode"), ("extra", '{"name": "benchy.gcode"}'),
                         ("meta", '{"hash": "abc"}')]:
        assert f'name="{field}"\r\n\r\n{value}\r\n'.encode() in got.body

    # At the user's word the old hooks are turned off, in OctoPrint's settings file.
    imported = [r["index"] for r in answer["hooks"] if r["status"] == "created"]
    hooks, changed = webhooks_import.turned_off(octoprint_settings.get(webhooks_import.PLUGIN_PATH), imported)
    assert changed == [0, 1]  # the third was off already
    octoprint_settings.set(webhooks_import.HOOKS_PATH, hooks, force=True)
    octoprint_settings.save(force=True)
    on_disk = yaml.safe_load(config_path.read_text())["plugins"]["webhooks"]["hooks"]
    assert [h.get("webhook_enabled") for h in on_disk] == [False, False, False, None]


async def test_import_needs_the_printer_key(app, herald, client):
    for headers in ({}, bearer("hpk_wrong"), bearer("hat_nope")):
        response = await client.post("/api/v1/printer/webhooks/import", json={"hooks": []}, headers=headers)
        assert response.status_code == 401
    owner = await make_user("ada@example.com")
    _printer, key = await make_printer(herald, owner)
    response = await client.post("/api/v1/printer/webhooks/import", json={"hooks": "nope"}, headers=bearer(key))
    assert response.status_code == 422 and "hooks" in (await response.get_json())["message"]


async def test_a_first_layout_hook_and_private_addresses(app, herald, client):
    """Settings version 1 kept one hook under plugins.webhooks; a non-admin may not target 127.0.0.1."""
    found = webhooks_import.find_hooks({"url": "http://127.0.0.1:9/x", "http_method": "POST", "data": "{}",
                                        "headers": "{}", "eventPrintDone": True, "settings_version": 1})
    assert len(found) == 1 and "settings_version" not in found[0]
    owner = await make_user("ada@example.com")
    _printer, key = await make_printer(herald, owner)
    answer = await (await client.post("/api/v1/printer/webhooks/import", json={"hooks": found},
                                      headers=bearer(key))).get_json()
    assert answer["hooks"][0]["status"] == "not_imported"
    assert "private" in answer["hooks"][0]["error"]
    assert await service.list_targets(owner) == []
