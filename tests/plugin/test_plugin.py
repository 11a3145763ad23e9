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


def outbox_records(plugin):
    """Every record in the outbox, oldest first, once the intake thread handled what it got."""
    assert plugin._intake.wait_idle(10), "the intake thread did not catch up"
    outbox = plugin._publisher.outbox
    return [record for name in outbox.names() for record in outbox.read(name)]


def outbox_events(plugin):
    return [record["event"] for record in outbox_records(plugin)]


def command(plugin, name, data=None):
    """Runs a settings-page command as the page does: 202 at once, the result later."""
    response = plugin.on_api_command(name, data or {})
    assert response.status_code == 202, response.get_json()
    entry = plugin.wait_for_command(response.get_json()["id"])
    assert entry["status"] != "running"
    return entry


def test_plugin_metadata_and_versioned_settings():
    assert octoprint_herald.__plugin_pythoncompat__ == ">=3.9,<4"
    plugin = HeraldPlugin()
    assert plugin.get_settings_version() == 2
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
    assert events[0]["printer_data"]["progress"]["completion"] == 0.0  # a started print is at 0 %
    assert events[1]["printer_data"]["progress"]["completion"] == 50.0
    assert events[3]["printer_data"]["state"]["text"] == "Cancelling"
    assert events[3]["payload"]["time"] == 7.2
    assert len({e["id"] for e in events}) == 4

    status = plugin._current_status()
    assert status["last_job"] == {"file": "a.gcode", "duration": 7, "result": "cancelled"}
    # The last job is remembered across a restart of OctoPrint.
    with open(os.path.join(plugin.get_plugin_data_folder(), "state.json")) as handle:
        assert json.load(handle)["last_job"]["result"] == "cancelled"


class StubFileManager:
    """OctoPrint's file manager as far as @meta needs it: metadata of stored files."""

    def __init__(self, files):
        self.files = files
        self.asked = []

    def file_exists(self, origin, path):
        self.asked.append((origin, path))
        return (origin, path) in self.files

    def get_metadata(self, origin, path):
        return json.loads(json.dumps(self.files[(origin, path)]))


def test_events_carry_the_files_metadata_and_a_state_that_agrees(make_plugin, printer):
    """@meta as OctoPrint-Webhooks reads it; Print Started says Printing, Print Paused says Paused."""
    history = [{"timestamp": 1588195000.0 + i, "printTime": 50.0, "printerProfile": "_default", "success": True}
               for i in range(30)]
    meta = {"hash": "2d2f2c6a", "analysis": {"estimatedPrintTime": 476.05},
            "statistics": {"lastPrintTime": {"_default": 50.53992706}}, "history": history}
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k")
    plugin._file_manager = StubFileManager({("local", "a.gcode"): meta})
    plugin.on_after_startup()
    # OctoPrint fires PrintStarted while it is still "Starting", with no progress yet.
    printer.data["state"] = {"text": "Starting", "flags": {"operational": True, "printing": False, "ready": True}}
    printer.data["job"]["file"].update(name="a.gcode", path="a.gcode", display="a.gcode", origin="local")
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local", "size": 10})
    printer.data["state"] = {"text": "Pausing", "flags": {"operational": True, "printing": True, "pausing": True,
                                                         "paused": False}}
    printer.data["progress"].update(completion=12.5, printTime=30)
    plugin.on_event("PrintPaused", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    printer.data["state"] = {"text": "Resuming", "flags": {"operational": True, "resuming": True, "paused": True}}
    plugin.on_event("PrintResumed", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    printer.data["job"]["file"].update(name="sd.gcode", path="sd.gcode", origin="sdcard")
    printer.data["state"] = {"text": "Cancelling", "flags": {"cancelling": True}}
    plugin.on_event("PrintCancelled", {"name": "sd.gcode", "path": "sd.gcode", "origin": "sdcard"})

    started, paused, resumed, cancelled = outbox_events(plugin)
    state = started["printer_data"]["state"]
    assert state["text"] == "Printing" and state["flags"]["printing"] is True and state["flags"]["ready"] is False
    assert started["printer_data"]["progress"]["completion"] == 0.0
    assert started["printer_data"]["progress"]["printTime"] == 0
    assert paused["printer_data"]["state"]["text"] == "Paused"
    assert paused["printer_data"]["state"]["flags"]["paused"] is True
    assert paused["printer_data"]["state"]["flags"]["pausing"] is False
    assert paused["printer_data"]["state"]["flags"]["printing"] is False
    assert paused["printer_data"]["progress"]["completion"] == 12.5
    assert resumed["printer_data"]["state"]["text"] == "Printing"
    assert resumed["printer_data"]["state"]["flags"]["paused"] is False
    assert cancelled["printer_data"]["state"]["text"] == "Cancelling"  # not an event state: as it was
    for event in (started, paused, resumed):
        sent = event["printer_data"]["meta"]
        assert sent["hash"] == "2d2f2c6a" and sent["statistics"]["lastPrintTime"]["_default"] == 50.53992706
        assert sent["history"] == history[-20:]  # the newest 20: an event stays under 64 KiB
    assert "meta" not in cancelled["printer_data"]  # a file without metadata
    assert ("sdcard", "sd.gcode") in plugin._file_manager.asked


def test_a_huge_metadata_is_cut_to_fit_an_event():
    from octoprint_herald.mapping import META_LIMIT, event_printer_data

    meta = {"hash": "h", "statistics": {"lastPrintTime": {"_default": 5.0}}, "analysis": {"x": "y" * 100},
            "someplugin": {"thumbnail": "z" * 100_000}}
    sent = event_printer_data("print.done", {"state": {"text": "Operational"}}, meta)["meta"]
    assert sent == {"hash": "h", "statistics": {"lastPrintTime": {"_default": 5.0}}, "analysis": {"x": "y" * 100}}
    meta["analysis"] = {"x": "y" * 100_000}
    sent = event_printer_data("print.done", {}, meta)["meta"]
    assert sent == {"hash": "h", "statistics": {"lastPrintTime": {"_default": 5.0}}}
    assert len(json.dumps(sent)) <= META_LIMIT


def test_print_started_says_nothing_is_printed_yet_even_when_its_handler_runs_late():
    from octoprint_herald.mapping import event_printer_data

    late = {"state": {"text": "Printing", "flags": {"printing": True}},
            "progress": {"completion": 2.39, "filepos": 4021, "printTime": 3, "printTimeLeft": 120}}
    sent = event_printer_data("print.started", late)
    assert sent["progress"] == {"completion": 0.0, "filepos": 0, "printTime": 0, "printTimeLeft": 120}
    assert late["progress"]["completion"] == 2.39  # OctoPrint's own data is left as it is
    assert event_printer_data("print.progress", late)["progress"]["completion"] == 2.39


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


def test_hooks_return_while_the_disk_is_stuck_and_writes_are_batched(make_plugin, monkeypatch):
    """A stuck SD card: every hook returns while an fsync is held, and none runs on OctoPrint's threads."""
    import threading

    from octoprint_herald import outbox as outbox_module

    real_fsync = outbox_module.os.fsync
    entered, release = threading.Event(), threading.Event()
    fsync_threads = []

    class StuckDisk:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fsync(fd):
            fsync_threads.append(threading.current_thread())
            if not entered.is_set():
                entered.set()
                release.wait(10)  # the old code waited here on the caller's thread: it fails, not hangs
            real_fsync(fd)

    monkeypatch.setattr(outbox_module, "os", StuckDisk())
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k")
    plugin.on_after_startup()
    order = []
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    assert entered.wait(10), "the first event never reached the disk"
    order.append("disk stuck")
    for p in range(1, 100):
        plugin.on_print_progress("local", "a.gcode", p)
    plugin.on_event("PrintPaused", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    assert plugin.on_gcode_received(None, "echo:busy: paused for user") == "echo:busy: paused for user"
    plugin.on_gcode_sent(None, "sent", "M600", None, "M600")
    order.append("hooks returned" if not release.is_set() else "hooks returned after the disk")
    release.set()
    order.append("disk free")
    events = outbox_events(plugin)
    assert order == ["disk stuck", "hooks returned", "disk free"]
    assert threading.current_thread() not in fsync_threads  # never on OctoPrint's thread
    assert [e["type"] for e in events] == (["print.started"] + ["print.progress"] * 99
                                           + ["print.paused", "printer.user_action_needed"])
    assert len(fsync_threads) <= 3  # 101 events, batched: not one fsync each


def test_commands_answer_at_once_and_report_back_to_the_page(make_plugin, receiver, api_app, as_admin):
    import threading

    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k")
    plugin.on_after_startup()
    assert plugin._intake.wait_idle(10)
    receiver.hold = release = threading.Event()
    order = []
    response = plugin.on_api_command("test", {})
    order.append(("answered", response.status_code, release.is_set()))
    assert receiver.held.wait(30)
    assert plugin.on_api_get(api_app.test_request_context("/?command=" + response.get_json()["id"])
                             .request).get_json()["status"] == "running"
    release.set()
    entry = plugin.wait_for_command(response.get_json()["id"])
    assert order == [("answered", 202, False)]
    assert entry["status"] == "done" and entry["result"]["reachable"] is True
    messages = [m[1] for m in plugin._plugin_manager.messages if m[1]["type"] == "command"]
    assert messages[-1]["command"]["id"] == entry["id"] and messages[-1]["command"]["status"] == "done"


def test_snapshots_go_with_print_events_not_with_progress(make_plugin):
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k", attach_snapshot=True)
    plugin.on_after_startup()
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    plugin.on_print_progress("local", "a.gcode", 1)
    records = outbox_records(plugin)
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

    body = command(plugin, "link", {"herald_url": receiver.url + "/", "printer_name": "Prusa"})["result"]
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
    refused = command(plugin, "verify", {"herald_url": receiver.url, "printer_key": "not-a-key"})
    assert refused["status"] == "failed" and "hpk_" in refused["error"]

    answer = command(plugin, "verify", {"herald_url": receiver.url, "printer_key": " hpk_pasted "})["result"]
    assert answer["linked"] is True and answer["name"] == "Prusa" and answer["version_problem"] is None
    assert receiver.of("POST", "/api/v1/printer/verify")[0].json() == {"plugin_version": octoprint_herald.__version__}
    assert plugin._settings.get(["printer_key"]) == "hpk_pasted"

    test = command(plugin, "test")["result"]
    assert test["reachable"] is True and test["herald_version"] == "0.1.0" and test["key_accepted"] is True

    receiver.routes[("GET", "/healthz")] = lambda r: (200, {"status": "ok", "version": "0.0.3"})
    old = command(plugin, "test")["result"]
    assert "too old" in old["version_problem"]

    state = command(plugin, "unlink")["result"]
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


def test_status_reports_the_local_ip_unless_the_setting_is_off(make_plugin):
    plugin = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k")
    assert plugin.get_settings_defaults()["publish_local_ip"] is True
    plugin._local_address.get = lambda url: "192.168.1.20"
    assert plugin._current_status()["local_ip"] == "192.168.1.20"
    hidden = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k", publish_local_ip=False)
    hidden._local_address.get = lambda url: "192.168.1.20"
    assert "local_ip" not in hidden._current_status()


def test_local_address_skips_loopback_and_is_cached(monkeypatch):
    from octoprint_herald import netinfo

    assert netinfo._address_towards("127.0.0.1") is None  # Herald on this machine: say nothing useless
    asked = []
    monkeypatch.setattr(netinfo, "_address_towards", lambda host: asked.append(host) or "10.0.0.7")
    now = [0.0]
    local = netinfo.LocalAddress(clock=lambda: now[0])
    assert local.get("http://10.0.0.1:8080") == "10.0.0.7"
    assert local.get("http://10.0.0.1:8080") == "10.0.0.7"
    assert asked == ["10.0.0.1"]
    now[0] = 61.0
    local.get("http://10.0.0.1:8080")
    assert asked == ["10.0.0.1", "10.0.0.1"]


def test_octoprint_webhooks_hooks_are_found_imported_and_turned_off(make_plugin, receiver):
    hooks = [{"url": "https://a.example.com/x", "http_method": "POST", "apiSecret": "s", "webhook_enabled": True,
              "eventPrintDone": True, "eventPrintFailed": True},
             {"url": "https://b.example.com/y", "http_method": "GET", "webhook_enabled": True, "eventError": True},
             {"url": "https://c.example.com/z", "webhook_enabled": False}]
    sent = []

    def herald_import(request):
        sent.append(request)
        return 200, {"hooks": [{"index": i, "status": "created", "name": f"h{i}", "not_carried_over": []}
                               for i in range(len(request.json()["hooks"]))],
                     "created": len(request.json()["hooks"]), "already_imported": 0, "not_imported": 0}

    receiver.routes[("POST", "/api/v1/printer/webhooks/import")] = herald_import
    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k")
    plugin._settings.global_values = {"plugins": {"webhooks": {"hooks": hooks, "settings_version": 2}}}
    found = plugin._command_webhooks_find({})["hooks"]
    assert [(h["index"], h["url"], h["enabled"], h["events"]) for h in found] == [
        (0, "https://a.example.com/x", True, ["Print Done", "Print Failed"]),
        (1, "https://b.example.com/y", True, ["Error"]), (2, "https://c.example.com/z", False, [])]
    assert "apiSecret" not in json.dumps(found)  # the page lists no secrets

    answer = plugin._command_webhooks_import({"indexes": [0, 2]})
    (request,) = sent
    assert request.headers["Authorization"] == "Bearer hpk_k"
    assert request.json() == {"hooks": [hooks[0], hooks[2]]}  # the hooks whole, as OctoPrint keeps them
    assert [r["index"] for r in answer["hooks"]] == [0, 2]  # numbered as the page lists them

    turned = plugin._command_webhooks_turn_off({"indexes": [0, 2]})
    assert turned["turned_off"] == [0]  # the third was off already
    stored = plugin._settings.global_values["plugins"]["webhooks"]["hooks"]
    assert [h["webhook_enabled"] for h in stored] == [False, True, False]
    assert plugin._settings.saves >= 1


def _link_routes(receiver, answers):
    receiver.routes[("POST", "/api/v1/link")] = lambda r: (201, {
        "device_code": "dc", "user_code": "WDJB-MJHT", "verification_uri": receiver.url + "/link",
        "verification_uri_complete": receiver.url + "/link?code=WDJB-MJHT", "expires_in": 600, "interval": 1})
    receiver.routes[("POST", "/api/v1/link/token")] = lambda r: next(answers)


def test_linking_survives_a_failed_poll_and_says_every_step_in_the_log(make_plugin, receiver, api_app, as_admin,
                                                                       caplog):
    """The poll after approval fails on the way (Herald re-issues the key to the next poll):
    the plugin keeps polling, links, and OctoPrint's log tells each step."""
    caplog.set_level("INFO", logger="octoprint.plugins.herald.test")
    _link_routes(receiver, iter([(400, {"error": "authorization_pending"}), (503, {"error": "unavailable"}),
                                 (200, {"printer_id": "p42", "printer_key": "hpk_second"})]))
    plugin = make_plugin()
    plugin.on_after_startup()
    assert command(plugin, "link", {"herald_url": receiver.url})["status"] == "done"
    wait_for(lambda: plugin._state()["link"]["status"] == "linked", timeout=20, what="linked")
    assert plugin._settings.get(["printer_key"]) == "hpk_second"
    text = caplog.text
    assert "Herald link started" in text and "Herald link poll failed" in text and "Herald link linked" in text
    # Each poll on a fresh connection: a kept-alive one can be closed under the poll.
    assert all(r.headers.get("Connection") == "close" for r in receiver.of("POST", "/api/v1/link/token"))


def test_linking_tells_why_when_the_key_was_lost_with_an_older_herald(make_plugin, receiver, api_app, as_admin,
                                                                     caplog):
    _link_routes(receiver, iter([(503, {"error": "unavailable"}), (400, {"error": "expired_token"})]))
    plugin = make_plugin()
    plugin.on_after_startup()
    command(plugin, "link", {"herald_url": receiver.url})
    wait_for(lambda: plugin._state()["link"]["status"] != "waiting", timeout=20, what="the link to end")
    link = plugin._state()["link"]
    assert link["status"] == "expired" and "did not arrive" in link["message"]
    assert "Herald link expired" in caplog.text


def test_a_broken_link_answer_ends_the_wait_with_a_reason(make_plugin, receiver, api_app, as_admin):
    import itertools

    _link_routes(receiver, itertools.repeat((400, {"error": "something_new", "message": "no such thing"})))
    plugin = make_plugin()
    plugin.on_after_startup()
    command(plugin, "link", {"herald_url": receiver.url})
    wait_for(lambda: plugin._state()["link"]["status"] != "waiting", timeout=20, what="the link to end")
    assert plugin._state()["link"]["status"] == "failed" and "no such thing" in plugin._state()["link"]["message"]


def test_a_clean_shutdown_stores_what_came_last_and_tells_herald(make_plugin, receiver, printer):
    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k")
    plugin.on_after_startup()
    wait_for(lambda: receiver.statuses(), what="a first status")
    receiver.fail_with = 503  # Herald cannot take the event now: it must stay on disk
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    receiver.fail_with = None
    plugin.on_shutdown()
    assert len(plugin._publisher.outbox) + len(receiver.events()) == 1
    goodbye = receiver.of("POST", "/api/v1/printer/offline")
    assert len(goodbye) == 1 and goodbye[0].json() == {"reason": "octoprint_shutdown"}
    assert goodbye[0].headers["Authorization"] == "Bearer hpk_k"


def test_a_429_waits_what_herald_says_not_the_backoff(receiver, make_plugin):
    from octoprint_herald.client import HeraldError
    from octoprint_herald.publisher import RetryPolicy

    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k")
    plugin.on_after_startup()
    publisher = plugin._publisher
    publisher.policy = RetryPolicy(base=2, cap=300, jitter=0.0)
    for _ in range(4):
        publisher.attempts += 1  # deep into a backoff already
    assert publisher._failed(HeraldError("slow down", status=429, retry_after=7.0)) == 7.0
    assert publisher._failed(HeraldError("down", status=503)) == 64.0


def test_a_full_disk_keeps_events_in_memory_says_so_and_recovers(make_plugin, receiver, monkeypatch, caplog):
    import errno

    from octoprint_herald import outbox as outbox_module

    full = {"value": True}
    real_write = outbox_module.Outbox._write

    def write(path, records):
        if full["value"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, records)

    monkeypatch.setattr(outbox_module.Outbox, "_write", staticmethod(write))
    receiver.fail_with = 503  # Herald down too: the events must wait somewhere
    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k")
    plugin.on_after_startup()
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    plugin.on_print_progress("local", "a.gcode", 1)
    assert plugin._intake.wait_idle(10)
    state = plugin._state()
    assert "No space left on device" in state["last_error"] and state["queued_events"] == 2
    assert "Could not store events on OctoPrint's disk" in caplog.text
    assert any("No space left" in (m[1]["state"].get("last_error") or "") for m in plugin._plugin_manager.messages
               if m[1]["type"] == "state")
    full["value"] = False  # space again, and Herald back: nothing was lost, no restart needed
    receiver.fail_with = None
    plugin._publisher.retry_at = 0.0
    plugin._publisher.wake()
    wait_for(lambda: len(receiver.events()) == 2, what="both events")
    assert [e["type"] for e in receiver.events()] == ["print.started", "print.progress"]
    assert plugin._state()["last_error"] is None
