"""From OctoPrint's data to Herald's payloads: status, state ids, events, progress, user actions."""

from __future__ import annotations

import datetime

import pytest
from octoprint_herald.mapping import EventMapper, build_status, hide_file_names, now_iso, state_id

PRINTING_DATA = {
    "state": {"text": "Printing", "flags": {"printing": True}, "error": ""},
    "job": {
        "file": {"name": "benchy.gcode", "path": "parts/benchy.gcode", "display": "benchy.gcode",
                 "origin": "local", "size": 242038, "date": 1763800000},
        "estimatedPrintTime": 3579.2, "averagePrintTime": None, "lastPrintTime": None,
        "filament": {"tool0": {"length": 1234.5, "volume": 8.1}}, "user": "admin",
    },
    "progress": {"completion": 42.51234, "filepos": 102911, "printTime": 1234.4,
                 "printTimeLeft": 2345.6, "printTimeLeftOrigin": "estimate"},
    "currentZ": 12.4,
    "offsets": {},
    "resends": {"count": 0, "transmitted": 10, "ratio": 0},
}
TEMPS = {
    "tool0": {"actual": 210.1, "target": 210.0, "offset": 0},
    "tool1": {"actual": 25.0, "target": None, "offset": 0},
    "bed": {"actual": 60.2, "target": 60.0, "offset": 0},
    "chamber": {"actual": 31.5, "target": 0.0, "offset": 0},
    "W": {"actual": 1.0, "target": 1.0},  # not a heater the contract knows
}


def test_status_while_printing_matches_the_contract():
    last_job = {"file": "cube.gcode", "path": "cube.gcode", "duration": 3600.4, "result": "completed"}
    status = build_status(PRINTING_DATA, TEMPS, "PRINTING", last_job)
    assert status == {
        "state": "Printing",
        "state_id": "printing",
        "temperatures": {
            "bed": {"actual": 60.2, "target": 60.0},
            "chamber": {"actual": 31.5, "target": 0.0},
            "tool0": {"actual": 210.1, "target": 210.0},
            "tool1": {"actual": 25.0, "target": None},
        },
        "job": {"file": "benchy.gcode", "progress": 42.51, "print_time": 1234, "print_time_left": 2346, "z": 12.4},
        "last_job": {"file": "cube.gcode", "duration": 3600, "result": "completed"},
    }


def test_status_hides_file_names_when_asked():
    last_job = {"file": "secret.gcode", "duration": 10, "result": "failed"}
    status = build_status(PRINTING_DATA, TEMPS, "PRINTING", last_job, publish_file_names=False)
    assert status["job"]["file"] is None
    assert status["last_job"] == {"file": None, "duration": 10, "result": "failed"}
    assert status["job"]["progress"] == 42.51


def test_status_before_anything_is_known_is_null_not_zero():
    status = build_status({}, {}, None, None)
    assert status == {
        "state": "Offline", "state_id": "offline", "temperatures": {},
        "job": {"file": None, "progress": None, "print_time": None, "print_time_left": None, "z": None},
        "last_job": None,
    }
    idle = build_status({"state": {"text": "Operational"}, "job": {"file": {"name": None}},
                         "progress": {"completion": None}},
                        {"tool0": {"actual": None, "target": None}}, "OPERATIONAL", None)
    assert idle["state_id"] == "operational"
    assert idle["temperatures"] == {"tool0": {"actual": None, "target": None}}
    assert idle["job"]["file"] is None and idle["job"]["progress"] is None


@pytest.mark.parametrize(("octoprint", "contract"), [
    ("OFFLINE", "offline"), ("CLOSED", "offline"), ("NONE", "offline"), (None, "offline"),
    ("OPEN_SERIAL", "connecting"), ("DETECT_BAUDRATE", "connecting"), ("CONNECTING", "connecting"),
    ("OPERATIONAL", "operational"), ("PRINTING", "printing"), ("STARTING", "printing"),
    ("PAUSING", "pausing"), ("PAUSED", "paused"), ("RESUMING", "resuming"),
    ("CANCELLING", "cancelling"), ("FINISHING", "finishing"), ("ERROR", "error"),
    ("CLOSED_WITH_ERROR", "error"), ("SOMETHING_NEW", "offline"),
])
def test_state_ids(octoprint, contract):
    assert state_id(octoprint) == contract


def test_a_cancel_is_one_print_cancelled_whatever_order_octoprint_fires_in():
    mapper = EventMapper()
    job = {"name": "a.gcode", "path": "a.gcode", "origin": "local", "size": 1}
    assert mapper.on_event("PrintStarted", job) == [("print.started", job)]
    sent = mapper.on_event("PrintCancelled", {**job, "time": 12.0})
    sent += mapper.on_event("PrintFailed", {**job, "time": 12.0, "reason": "cancelled"})
    assert [t for t, _ in sent] == ["print.cancelled"]

    # The other order (PrintFailed with reason "cancelled" first) also gives exactly one.
    mapper.on_event("PrintStarted", job)
    sent = mapper.on_event("PrintFailed", {**job, "reason": "cancelled"}) + mapper.on_event("PrintCancelled", job)
    assert [t for t, _ in sent] == ["print.cancelled"]

    # A real failure is a failure, and the next job's cancel is reported again.
    mapper.on_event("PrintStarted", job)
    assert [t for t, _ in mapper.on_event("PrintFailed", {**job, "reason": "error"})] == ["print.failed"]
    mapper.on_event("PrintStarted", job)
    assert [t for t, _ in mapper.on_event("PrintCancelled", job)] == ["print.cancelled"]


def test_simple_events_keep_octoprints_payload_and_others_are_ignored():
    mapper = EventMapper()
    payload = {"name": "a.gcode", "path": "a.gcode", "origin": "local", "time": 5.5}
    assert mapper.on_event("PrintStarted", payload) == [("print.started", payload)]
    mapper.on_progress("local", "a.gcode", 99)
    assert mapper.on_event("PrintDone", payload) == [("print.done", payload)]
    assert mapper.on_event("PrintPaused", payload) == [("print.paused", payload)]
    assert mapper.on_event("PrintResumed", payload) == [("print.resumed", payload)]
    assert mapper.on_event("Error", {"error": "MAXTEMP"}) == [("printer.error", {"error": "MAXTEMP"})]
    assert mapper.on_event("ZChange", {"new": 1.0}) == []
    assert mapper.on_event("PrinterStateChanged", {"state_id": "PRINTING"}) == []


def test_progress_is_every_whole_percent_from_1_to_99_exactly_once():
    mapper = EventMapper()
    mapper.on_event("PrintStarted", {})
    sent = []
    # OctoPrint reports 0 first, skips percents on small files, may repeat, ends with 100.
    for percent in [0, 1, 2, 2, 5, 6, 40, 39, 41, 97, 100, 100]:
        sent += mapper.on_progress("local", "dir/a.gcode", percent)
    assert all(t == "print.progress" for t, _ in sent)
    assert [p["progress"] for _, p in sent] == list(range(1, 100))
    assert sent[0][1] == {"progress": 1, "origin": "local", "path": "dir/a.gcode", "name": "a.gcode"}

    mapper.on_event("PrintStarted", {})
    assert [p["progress"] for _, p in mapper.on_progress("local", "a.gcode", 3)] == [1, 2, 3]


def test_paused_for_user_is_reported_once_per_pause():
    mapper = EventMapper()
    lines = ["echo:busy: paused for user"] * 5
    sent = [e for line in lines for e in mapper.on_received_line(line)]
    assert [t for t, _ in sent] == ["printer.user_action_needed"]
    assert sent[0][1]["reason"] == "paused_for_user"
    assert mapper.on_received_line("T:210.0 /210.0 B:60.0 /60.0") == []
    assert mapper.on_received_line("echo:busy: paused for user") == []
    mapper.on_received_line("ok")  # the user resumed: the firmware acknowledges again
    assert len(mapper.on_received_line("echo:busy: paused for user")) == 1
    mapper.on_received_line("ok")
    assert len(mapper.on_received_line("echo:busy paused for user")) == 1  # some firmwares drop the colon


def test_a_filament_change_and_its_busy_lines_are_one_occurrence():
    mapper = EventMapper()
    sent = mapper.on_sent_command("M600")
    sent += mapper.on_received_line("echo:busy: paused for user")
    sent += mapper.on_sent_command("M600")
    assert [p["reason"] for _, p in sent] == ["filament_change"]
    mapper.on_received_line("ok")
    assert [p["reason"] for _, p in mapper.on_sent_command("M600")] == ["filament_change"]
    assert mapper.on_sent_command("G1") == []


def test_hiding_file_names_clears_payload_and_snapshot_only():
    payload = {"name": "a.gcode", "path": "x/a.gcode", "origin": "local", "size": 3}
    data = {"job": {"file": {"name": "a.gcode", "path": "x/a.gcode", "display": "a.gcode", "size": 3}},
            "progress": {"completion": 5}}
    hidden_payload, hidden_data = hide_file_names(payload, data)
    assert hidden_payload == {"name": None, "path": None, "origin": "local", "size": 3}
    assert hidden_data["job"]["file"] == {"name": None, "path": None, "display": None, "size": 3}
    assert payload["name"] == "a.gcode"  # the originals are untouched


def test_occurred_at_carries_a_utc_offset():
    parsed = datetime.datetime.fromisoformat(now_iso())
    assert parsed.utcoffset() is not None
    assert abs((datetime.datetime.now(datetime.UTC) - parsed).total_seconds()) < 5


def test_done_sends_the_percents_octoprint_had_not_reported_yet_and_late_reports_are_dropped():
    mapper = EventMapper()
    mapper.on_event("PrintStarted", {})
    mapper.on_progress("local", "a.gcode", 95)
    sent = mapper.on_event("PrintDone", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    assert [(t, p.get("progress")) for t, p in sent] == [
        ("print.progress", 96), ("print.progress", 97), ("print.progress", 98), ("print.progress", 99),
        ("print.done", None)]
    # OctoPrint's thread for the 100 % report may run after PrintDone: nothing more is sent.
    assert mapper.on_progress("local", "a.gcode", 100) == []
    # After a cancel, late reports are dropped too.
    mapper.on_event("PrintStarted", {})
    mapper.on_progress("local", "a.gcode", 10)
    mapper.on_event("PrintCancelled", {})
    assert mapper.on_progress("local", "a.gcode", 11) == []
