"""The plugin class with OctoPrint's settings, printer and plugin manager stubbed."""

from __future__ import annotations

import json
import os
import time

import flask
import octoprint_herald
import pytest
from octoprint_herald import HeraldPlugin


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def outbox_events(plugin):
    outbox = plugin._publisher.outbox
    return [outbox.read(name)["event"] for name in outbox.names()]


def test_plugin_metadata_and_versioned_settings():
    assert octoprint_herald.__plugin_pythoncompat__ == ">=3.9,<4"
    plugin = HeraldPlugin()
    assert plugin.get_settings_version() == 1
    assert plugin.get_settings_restricted_paths() == {"admin": [["printer_key"]]}
    defaults = plugin.get_settings_defaults()
    assert defaults["verify_tls"] is True and defaults["attach_snapshot"] is False
    assert defaults["publish_file_names"] is True
    assert (defaults["interval_printing"], defaults["interval_idle"]) == (30, 60)
    octoprint_herald.__plugin_load__()
    assert set(octoprint_herald.__plugin_hooks__) == {
        "octoprint.comm.protocol.gcode.received", "octoprint.comm.protocol.gcode.sent",
        "octoprint.plugin.softwareupdate.check_config"}


def test_software_update_checks_the_linked_herald(make_plugin):
    from octoprint_herald.version import __version__

    assert make_plugin(herald_url="").get_update_information() == {}  # no Herald yet: no check
    check = make_plugin(herald_url="https://herald.example.org/").get_update_information()["herald"]
    assert check["type"] == "jsondata" and check["current"] == __version__
    assert check["jsondata"] == "https://herald.example.org/plugin/octoprint-herald.json"
    # The pip target is Herald's wheel of the version the check found.
    assert check["pip"].format(target_version="9.9.9") == \
        "https://herald.example.org/plugin/octoprint_herald-9.9.9-py3-none-any.whl"


def test_settings_migration_from_unversioned_normalises_the_address(make_plugin):
    plugin = make_plugin(herald_url=" https://herald.example.org/ ")
    plugin.on_settings_migrate(1, None)
    assert plugin._settings.get(["herald_url"]) == "https://herald.example.org"


def test_events_are_queued_with_the_snapshot_of_that_moment(make_plugin, printer, receiver):
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k")  # Herald down
    plugin.on_after_startup()
    printer.data["state"]["text"] = "Printing"
    printer.data["job"]["file"].update(name="a.gcode", path="a.gcode", display="a.gcode")
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local", "size": 10})
    printer.data["progress"]["completion"] = 50.0
    plugin.on_print_progress("local", "a.gcode", 2)
    printer.data["state"]["text"] = "Cancelling"
    plugin.on_event("PrintCancelled", {"name": "a.gcode", "path": "a.gcode", "origin": "local", "time": 7.2})
    plugin.on_event("PrintFailed", {"name": "a.gcode", "path": "a.gcode", "origin": "local", "time": 7.4,
                                    "reason": "cancelled"})
    plugin.on_event("ZChange", {"new": 0.3})

    events = outbox_events(plugin)
    assert [e["type"] for e in events] == ["print.started", "print.progress", "print.progress", "print.cancelled"]
    assert events[0]["printer_data"]["state"]["text"] == "Printing"
    assert events[0]["printer_data"]["progress"]["completion"] is None
    assert events[1]["printer_data"]["progress"]["completion"] == 50.0
    assert events[3]["printer_data"]["state"]["text"] == "Cancelling"
    assert events[3]["payload"]["time"] == 7.2
    assert len({e["id"] for e in events}) == 4

    status = plugin._current_status()
    assert status["last_job"] == {"file": "a.gcode", "duration": 7, "result": "cancelled"}
    # The last job is remembered across a restart of OctoPrint.
    with open(os.path.join(plugin.get_plugin_data_folder(), "state.json")) as handle:
        assert json.load(handle)["last_job"]["result"] == "cancelled"


def test_progress_reported_from_many_threads_is_queued_in_order(make_plugin):
    import threading

    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k")
    plugin.on_after_startup()
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    # OctoPrint hands each progress report to plugins in a thread of its own.
    threads = [threading.Thread(target=plugin.on_print_progress, args=("local", "a.gcode", p))
               for p in range(0, 101, 3)]
    for thread in threads:
        thread.start()
    plugin.on_event("PrintDone", {"name": "a.gcode", "path": "a.gcode", "origin": "local", "time": 9})
    for thread in threads:
        thread.join()
    events = outbox_events(plugin)
    assert [e["type"] for e in events] == ["print.started"] + ["print.progress"] * 99 + ["print.done"]
    assert [e["payload"]["progress"] for e in events[1:-1]] == list(range(1, 100))


def test_snapshots_go_with_print_events_not_with_progress(make_plugin):
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k", attach_snapshot=True)
    plugin.on_after_startup()
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    plugin.on_print_progress("local", "a.gcode", 1)
    outbox = plugin._publisher.outbox
    records = [outbox.read(name) for name in outbox.names()]
    assert [(r["event"]["type"], r["snapshot"]) for r in records] == [
        ("print.started", True), ("print.progress", False)]


def test_hidden_file_names_never_leave_the_plugin(make_plugin, printer):
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k", publish_file_names=False)
    plugin.on_after_startup()
    printer.data["job"]["file"].update(name="secret.gcode", path="secret.gcode", display="secret.gcode")
    plugin.on_event("PrintDone", {"name": "secret.gcode", "path": "secret.gcode", "origin": "local", "time": 3})
    text = json.dumps(outbox_events(plugin)) + json.dumps(plugin._current_status())
    assert "secret" not in text


def test_nothing_is_queued_while_the_printer_is_not_linked(make_plugin):
    plugin = make_plugin(herald_url="http://127.0.0.1:9")
    plugin.on_after_startup()
    plugin.on_event("PrintStarted", {"name": "a.gcode"})
    assert outbox_events(plugin) == []


def test_user_action_from_firmware_lines_is_one_event_per_pause(make_plugin):
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k")
    plugin.on_after_startup()
    for _ in range(4):
        assert plugin.on_gcode_received(None, "echo:busy: paused for user") == "echo:busy: paused for user"
    plugin.on_gcode_received(None, "ok")
    plugin.on_gcode_sent(None, "sent", "M600", None, "M600")
    plugin.on_gcode_received(None, "echo:busy: paused for user")
    assert [e["payload"]["reason"] for e in outbox_events(plugin)] == ["paused_for_user", "filament_change"]


def test_the_publisher_sends_the_queue_and_status_to_herald(make_plugin, printer, receiver):
    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k")
    printer.state = "PRINTING"
    printer.data["state"]["text"] = "Printing"
    printer.temps = {"tool0": {"actual": 200.0, "target": 210.0}, "bed": {"actual": 55.0, "target": 60.0}}
    plugin.on_after_startup()
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    wait_for(lambda: receiver.events() and receiver.statuses(), what="event and status")
    assert receiver.events()[0]["type"] == "print.started"
    status = receiver.statuses()[-1]
    assert status["state_id"] == "printing"
    assert status["temperatures"]["tool0"] == {"actual": 200.0, "target": 210.0}
    wait_for(lambda: any(m[1]["state"]["last_success"] for m in plugin._plugin_manager.messages),
             what="the settings page to hear of the success")


def test_a_401_tells_the_settings_page_to_relink(make_plugin, receiver):
    receiver.fail_with = 401
    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_revoked")
    plugin.on_after_startup()
    wait_for(lambda: plugin._state().get("needs_relink"), what="needs_relink")
    assert any(m[1]["state"]["needs_relink"] for m in plugin._plugin_manager.messages)
    assert "link the printer again" in plugin._state()["last_error"]


def test_settings_save_cannot_overwrite_the_key(make_plugin, monkeypatch):
    plugin = make_plugin(printer_key="hpk_kept")
    saved = {}
    monkeypatch.setattr("octoprint.plugin.SettingsPlugin.on_settings_save",
                        lambda self, data: saved.update(data) or data)
    plugin.on_settings_save({"printer_key": "", "printer_id": "x", "herald_url": "https://h.example/ "})
    assert saved == {"herald_url": "https://h.example"}


@pytest.fixture
def api_app():
    """A Flask request context, as OctoPrint's SimpleApiPlugin routes run in one."""
    app = flask.Flask(__name__)
    with app.test_request_context():
        yield app


@pytest.fixture
def as_admin(monkeypatch):
    from octoprint.access.permissions import Permissions

    allowed = {"value": True}
    monkeypatch.setattr(type(Permissions.SETTINGS), "can", lambda self: allowed["value"], raising=False)
    return allowed


def test_linking_through_the_device_flow_stores_the_key(make_plugin, receiver, api_app, as_admin):
    answers = iter([(400, {"error": "authorization_pending"}), (400, {"error": "slow_down"}),
                    (200, {"printer_id": "p42", "printer_key": "hpk_fresh"})])
    receiver.routes[("POST", "/api/v1/link")] = lambda r: (201, {
        "device_code": "dc", "user_code": "WDJB-MJHT", "verification_uri": receiver.url + "/link",
        "verification_uri_complete": receiver.url + "/link?code=WDJB-MJHT", "expires_in": 600, "interval": 1})
    receiver.routes[("POST", "/api/v1/link/token")] = lambda r: next(answers)
    plugin = make_plugin()
    plugin.on_after_startup()

    response = plugin.on_api_command("link", {"herald_url": receiver.url + "/", "printer_name": "Prusa"})
    body = response.get_json()
    assert body["user_code"] == "WDJB-MJHT" and body["status"] == "waiting"
    assert body["verification_uri_complete"].endswith("code=WDJB-MJHT")
    assert receiver.of("POST", "/api/v1/link")[0].json() == {"printer_name": "Prusa"}
    assert plugin._settings.get(["herald_url"]) == receiver.url

    wait_for(lambda: plugin._settings.get(["printer_key"]) == "hpk_fresh", timeout=15, what="the key")
    assert plugin._settings.get(["printer_id"]) == "p42"
    assert [r.json() for r in receiver.of("POST", "/api/v1/link/token")] == [{"device_code": "dc"}] * 3
    wait_for(lambda: plugin._state()["link"]["status"] == "linked", what="linked state")
    assert plugin._state()["linked"] is True
    wait_for(lambda: receiver.statuses(), what="publishing with the new key")


def test_manual_key_verify_test_and_unlink(make_plugin, receiver, api_app, as_admin):
    plugin = make_plugin()
    plugin.on_after_startup()
    refused = plugin.on_api_command("verify", {"herald_url": receiver.url, "printer_key": "not-a-key"})
    assert refused.status_code == 400 and "hpk_" in refused.get_json()["error"]

    answer = plugin.on_api_command("verify", {"herald_url": receiver.url, "printer_key": " hpk_pasted "}).get_json()
    assert answer["linked"] is True and answer["name"] == "Prusa" and answer["version_problem"] is None
    assert receiver.of("POST", "/api/v1/printer/verify")[0].json() == {"plugin_version": octoprint_herald.__version__}
    assert plugin._settings.get(["printer_key"]) == "hpk_pasted"

    test = plugin.on_api_command("test", {}).get_json()
    assert test["reachable"] is True and test["herald_version"] == "0.1.0" and test["key_accepted"] is True

    receiver.routes[("GET", "/healthz")] = lambda r: (200, {"status": "ok", "version": "0.0.3"})
    old = plugin.on_api_command("test", {}).get_json()
    assert "too old" in old["version_problem"]

    state = plugin.on_api_command("unlink", {}).get_json()
    assert state["linked"] is False
    assert receiver.of("DELETE", "/api/v1/printer")[0].headers["Authorization"] == "Bearer hpk_pasted"
    assert plugin._settings.get(["printer_key"]) == ""


def test_only_admins_may_use_the_api(make_plugin, api_app, as_admin):
    from werkzeug.exceptions import Forbidden

    plugin = make_plugin()
    as_admin["value"] = False
    with pytest.raises(Forbidden):
        plugin.on_api_command("test", {})
    with pytest.raises(Forbidden):
        plugin.on_api_get(None)
