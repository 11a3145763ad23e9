"""Herald as a drop-in for OctoPrint-Webhooks: the receiver gets what OctoPrint-Webhooks sends.

The expected requests are written here from OctoPrint-Webhooks' documented rules (its
README: the default body and headers, @param and dot notation, a lone @param keeping its
type, @snapshot switching to multipart/form-data and its key dropped when no picture
could be taken, a wrong Content-Type replaced) and from its observed encoding (form and
multipart values: objects as JSON text, numbers and true/false as Python writes them,
null left out; a cancel arriving as "Print Failed" with reason "cancelled"). Each test
stores real events and reads what Herald's real receiver (tests/support/webhooks.py) got.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

import pytest

from appliance.webhooks import targets as service
from appliance.webhooks.presets import PRESETS
from tests.support.webhooks import Received, store_event

WHEN = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
META = {
    "hash": "2d2f2c6a410f8786b62604422799c9f3c0721367",
    "analysis": {"estimatedPrintTime": 476.05552375713864,
                 "dimensions": {"width": 136.67, "depth": 119.672, "height": 5.6},
                 "filament": {"tool0": {"volume": 0.8077585001602579, "length": 335.8269600000015}}},
    "statistics": {"averagePrintTime": {"_default": 49.04197595574509},
                   "lastPrintTime": {"_default": 50.53992706}},
    "history": [{"timestamp": 1588195498.7716029, "printTime": 50.352958230999995,
                 "printerProfile": "_default", "success": True}],
}
STATE_PRINTING = {"text": "Printing", "flags": {
    "operational": True, "printing": True, "cancelling": False, "pausing": False, "resuming": False,
    "finishing": False, "closedOrError": False, "error": False, "paused": False, "ready": False,
    "sdReady": False}}
JOB = {"file": {"name": "benchy.gcode", "path": "benchy.gcode", "display": "benchy.gcode", "origin": "local",
                "size": 242038, "date": 1588195405},
       "estimatedPrintTime": 476.05552375713864, "averagePrintTime": 48.8202253183409,
       "lastPrintTime": None, "filament": {"tool0": {"volume": 0.8077585001602579, "length": 335.8269600000015}},
       "user": "maker"}
PROGRESS = {"completion": 42.5, "filepos": 35087, "printTime": 29, "printTimeLeft": 40,
            "printTimeLeftOrigin": "average"}
PRINTER_DATA = {"state": STATE_PRINTING, "job": JOB, "progress": PROGRESS, "currentZ": 0.2, "offsets": {},
                "meta": META}
FILE_PAYLOAD = {"name": "benchy.gcode", "path": "benchy.gcode", "origin": "local", "size": 242038,
                "owner": "maker", "user": "maker"}
# OctoPrint-Webhooks' shipped default body and header (its settings defaults).
DEFAULT_BODY = ('{\n  "deviceIdentifier":"@deviceIdentifier",\n  "apiSecret":"@apiSecret",\n  "topic":"@topic",\n'
                '  "message":"@message",\n  "extra":"@extra",\n  "state": "@state",\n  "job": "@job",\n'
                '  "progress": "@progress",\n  "currentZ": "@currentZ",\n  "offsets": "@offsets",\n'
                '  "meta": "@meta",\n  "currentTime": "@currentTime",\n  "snapshot": "@snapshot"\n}')
DEFAULT_HEADERS = '{\n  "Content-Type": "application/json"\n}'
# Its default texts.
MESSAGES = {
    "Print Started": "Your print has started.",
    "Print Done": "Your print is done.",
    "Print Failed": "Something went wrong and your print has failed.",
    "Print Paused": "Your print has paused. You might need to change the filament color.",
    "User Action Needed": "User action needed. You might need to change the filament color.",
    "Error": "There was an error.",
}
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"


async def hook(herald, owner, receiver, path="/hook", **fields):
    """A target set up as an OctoPrint-Webhooks hook with its defaults would be."""
    data = {"name": path, "url": receiver.url + path, "headers": DEFAULT_HEADERS, "body": DEFAULT_BODY,
            "events": ["print.started", "print.done", "print.failed", "print.paused",
                       "printer.user_action_needed", "printer.error"],
            "device_identifier": "Blane's Printer", "api_secret": "abcdef123456", **fields}
    return await service.create_target(herald, owner, data)


def multipart(got: Received) -> list[tuple[str, str | None, str | None, bytes]]:
    """(name, filename, content type, bytes) of each part, in order."""
    assert got.headers["content-type"].startswith("multipart/form-data; boundary=")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + got.headers["content-type"].encode() + b"\r\n\r\n" + got.body)
    parts = []
    for part in message.iter_parts():
        parts.append((part.get_param("name", header="content-disposition"), part.get_filename(),
                      part.get("content-type") if part.get_filename() else None,
                      part.get_payload(decode=True)))
    return parts


def text_fields(got: Received) -> dict[str, str]:
    fields = {}
    for name, filename, _type, data in multipart(got):
        if filename is None:
            assert name not in fields, f"field {name} twice"
            fields[name] = data.decode()
    return fields


def _parsed(value):
    if isinstance(value, dict):
        return {k: _parsed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parsed(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_parsed(v) for v in value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        return json.loads(value)
    return value


def assert_same(herald, got, expected) -> None:
    """Exact text on SQLite. PostgreSQL's jsonb keeps no key order inside stored objects, so
    there JSON text inside a field is compared parsed (the fields' own order is kept)."""
    if herald.settings.is_sqlite:
        assert got == expected
    else:
        assert _parsed(got) == _parsed(expected)


def form_text(value) -> str:
    """A top-level value as OctoPrint-Webhooks puts it in a form: JSON text for objects, Python's str else."""
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def default_fields(topic: str, message: str, extra: dict, data: dict = PRINTER_DATA) -> dict[str, str]:
    """OctoPrint-Webhooks' default body, multipart-encoded: null values left out."""
    values = {"deviceIdentifier": "Blane's Printer", "apiSecret": "abcdef123456", "topic": topic,
              "message": message, "extra": extra, "state": data["state"], "job": data["job"],
              "progress": data["progress"], "currentZ": data["currentZ"], "offsets": data["offsets"],
              "meta": data.get("meta", ""), "currentTime": int(WHEN.timestamp())}
    return {k: form_text(v) for k, v in values.items() if v is not None}


# --- the default body ------------------------------------------------------------------


async def test_default_body_is_multipart_without_a_picture(app, herald, owner, printer, receiver):
    await hook(herald, owner, receiver)
    await store_event(herald, printer, "print.started", payload=FILE_PAYLOAD, printer_data=PRINTER_DATA,
                      occurred_at=WHEN)
    (got,) = await receiver.wait_for(1)
    assert got.method == "POST" and got.path == "/hook"
    parts = multipart(got)
    assert [p[1] for p in parts] == [None] * len(parts)  # no picture: the snapshot key is left out
    assert_same(herald, text_fields(got), default_fields("Print Started", "Your print has started.", FILE_PAYLOAD))
    # Objects are JSON text as Python's json.dumps writes it (", " and ": ", ASCII escapes).
    assert_same(herald, text_fields(got)["meta"], json.dumps(META))
    assert text_fields(got)["currentZ"] == "0.2"
    assert json.loads(text_fields(got)["meta"])["statistics"]["lastPrintTime"]["_default"] == 50.53992706


async def test_default_body_with_a_picture(app, herald, owner, printer, receiver, settings):
    (settings.data_path / "snapshots").mkdir(parents=True, exist_ok=True)
    (settings.data_path / "snapshots" / "e1.jpg").write_bytes(JPEG)
    await hook(herald, owner, receiver)
    await store_event(herald, printer, "print.done", payload={**FILE_PAYLOAD, "time": 50.2},
                      printer_data={**PRINTER_DATA, "currentZ": None}, occurred_at=WHEN,
                      snapshot_path="snapshots/e1.jpg")
    (got,) = await receiver.wait_for(1)
    parts = multipart(got)
    assert parts[-1] == ("snapshot", "snapshot.jpg", "image/jpeg", JPEG)  # the picture comes last
    expected = default_fields("Print Done", "Your print is done.", {**FILE_PAYLOAD, "time": 50.2},
                              {**PRINTER_DATA, "currentZ": None})
    assert "currentZ" not in expected  # null is left out
    assert_same(herald, text_fields(got), expected)
    assert [p[0] for p in parts[:-1]] == list(expected)  # in the body's order


async def test_every_event_gets_the_default_request(app, herald, owner, printer, receiver):
    """OctoPrint-Webhooks' events with all switches on, progress every 25 %."""
    await hook(herald, owner, receiver, events=[
        "print.started", "print.done", "print.failed", "print.paused", "printer.user_action_needed",
        "printer.error", "print.progress"], progress_step=25)
    failed = {**FILE_PAYLOAD, "time": 12.5, "reason": "error"}
    error = {"error": "Thermal Runaway", "reason": "firmware"}
    action = {"reason": "filament_change", "command": "M600"}
    sent = [("print.started", FILE_PAYLOAD), ("print.progress", {"progress": 25, "origin": "local",
                                                                  "path": "benchy.gcode", "name": "benchy.gcode"}),
            ("print.paused", FILE_PAYLOAD), ("printer.user_action_needed", action), ("printer.error", error),
            ("print.failed", failed), ("print.done", FILE_PAYLOAD)]
    for event_type, payload in sent:
        await store_event(herald, printer, event_type, payload=payload, printer_data=PRINTER_DATA, occurred_at=WHEN)
    got = await receiver.wait_for(len(sent))
    expected = [
        default_fields("Print Started", MESSAGES["Print Started"], FILE_PAYLOAD),
        default_fields("Print Progress", "Your print is 25 % complete.", sent[1][1]),
        default_fields("Print Paused", MESSAGES["Print Paused"], FILE_PAYLOAD),
        default_fields("User Action Needed", MESSAGES["User Action Needed"], action),
        default_fields("Error", MESSAGES["Error"], error),
        default_fields("Print Failed", MESSAGES["Print Failed"], failed),
        default_fields("Print Done", MESSAGES["Print Done"], FILE_PAYLOAD),
    ]
    assert_same(herald, [text_fields(r) for r in got], expected)
    assert {r.headers["content-type"].split(";")[0] for r in got} == {"multipart/form-data"}


# --- every @param, JSON and form --------------------------------------------------------

EVERY_PARAM = {
    "deviceIdentifier": "@deviceIdentifier", "apiSecret": "@apiSecret", "topic": "@topic", "message": "@message",
    "extra": "@extra", "state": "@state", "job": "@job", "progress": "@progress", "currentZ": "@currentZ",
    "offsets": "@offsets", "meta": "@meta", "currentTime": "@currentTime",
    "milestone": "@percentCompleteMilestone",
    "file": "@job.file.name", "completion": "@progress.completion", "paused": "@state.flags.paused",
    "hash": "@meta.hash", "last": "@meta.statistics.lastPrintTime._default", "missing": "@meta.nothing.here",
    "line": "@job.file.name is at @progress.completion % (z @currentZ ) for @deviceIdentifier",
    "list": ["@topic", {"nested": "@job.file.size"}],
    "plain": "my custom data",
}


async def test_every_param_in_json(app, herald, owner, printer, receiver):
    await hook(herald, owner, receiver, body=json.dumps(EVERY_PARAM), progress_step=10,
               headers=json.dumps({"Content-Type": "text/plain"}), events=["print.paused", "print.progress"])
    await store_event(herald, printer, "print.progress", payload={"progress": 30}, printer_data=PRINTER_DATA,
                      occurred_at=WHEN)
    await store_event(herald, printer, "print.paused", payload=FILE_PAYLOAD, printer_data=PRINTER_DATA,
                      occurred_at=WHEN)
    progress, got = await receiver.wait_for(2)
    assert json.loads(progress.body)["message"] == "Your print is 30 % complete."
    assert got.headers["content-type"] == "application/json"  # a wrong one is replaced
    assert json.loads(got.body) == {
        "deviceIdentifier": "Blane's Printer", "apiSecret": "abcdef123456", "topic": "Print Paused",
        "message": MESSAGES["Print Paused"], "extra": FILE_PAYLOAD, "state": STATE_PRINTING, "job": JOB,
        "progress": PROGRESS, "currentZ": 0.2, "offsets": {}, "meta": META, "currentTime": int(WHEN.timestamp()),
        "milestone": 30,  # the milestone last reached, as OctoPrint-Webhooks keeps it
        "file": "benchy.gcode", "completion": 42.5, "paused": False, "hash": META["hash"], "last": 50.53992706,
        "missing": "", "line": "benchy.gcode is at 42.5 % (z 0.2 ) for Blane's Printer",
        "list": ["Print Paused", {"nested": 242038}], "plain": "my custom data",
    }


async def test_every_param_in_form_encoding(app, herald, owner, printer, receiver):
    body = {k: v for k, v in EVERY_PARAM.items() if k != "list"}
    body["list"] = ["@topic", "@currentZ"]
    await hook(herald, owner, receiver, body=json.dumps(body), content_type="form", headers="{}")
    await store_event(herald, printer, "print.started", payload=FILE_PAYLOAD,
                      printer_data={**PRINTER_DATA, "currentZ": None}, occurred_at=WHEN)
    (got,) = await receiver.wait_for(1)
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert_same(herald, parse_qsl(got.body.decode(), keep_blank_values=True), [
        ("deviceIdentifier", "Blane's Printer"), ("apiSecret", "abcdef123456"), ("topic", "Print Started"),
        ("message", MESSAGES["Print Started"]), ("extra", json.dumps(FILE_PAYLOAD)),
        ("state", json.dumps(STATE_PRINTING)), ("job", json.dumps(JOB)), ("progress", json.dumps(PROGRESS)),
        # currentZ is null: left out
        ("offsets", "{}"), ("meta", json.dumps(META)), ("currentTime", str(int(WHEN.timestamp()))),
        ("milestone", "0"), ("file", "benchy.gcode"), ("completion", "42.5"),
        ("paused", "False"),  # Python's word, as OctoPrint-Webhooks' form sends it
        ("hash", META["hash"]), ("last", "50.53992706"), ("missing", ""),
        ("line", "benchy.gcode is at 42.5 % (z  ) for Blane's Printer"),
        ("plain", "my custom data"),
        ("list", json.dumps(["Print Started", None])),
    ])


# --- headers, URL ------------------------------------------------------------------------


async def test_header_templates(app, herald, owner, printer, receiver):
    await hook(herald, owner, receiver, path="/h/@deviceIdentifier", body=json.dumps({"topic": "@topic"}),
               headers=json.dumps({"Authorization": "Bearer @apiSecret", "X-Device": "@deviceIdentifier",
                                   "X-File": "@job.file.name", "X-Z": "@currentZ",
                                   "X-Line": "@topic at @progress.completion %",
                                   "Content-Type": "application/json; charset=utf-8"}))
    await store_event(herald, printer, "print.started", payload=FILE_PAYLOAD, printer_data=PRINTER_DATA,
                      occurred_at=WHEN)
    (got,) = await receiver.wait_for(1)
    assert got.path == "/h/Blane's Printer"
    assert {k: got.headers[k] for k in ("authorization", "x-device", "x-file", "x-z", "x-line", "content-type")} == {
        "authorization": "Bearer abcdef123456", "x-device": "Blane's Printer", "x-file": "benchy.gcode",
        "x-z": "0.2", "x-line": "Print Started at 42.5 %",
        "content-type": "application/json; charset=utf-8"}  # names application/json: kept
    assert json.loads(got.body) == {"topic": "Print Started"}


async def test_snapshot_headers_and_get(app, herald, owner, printer, receiver):
    """With @snapshot the Content-Type header is replaced by multipart's; GET puts the fields in the query."""
    body = json.dumps({"topic": "@topic", "z": "@currentZ", "snap": "@snapshot", "extra": "@extra"})
    await hook(herald, owner, receiver, path="/post", body=body,
               headers=json.dumps({"Content-Type": "application/json", "X-Topic": "@topic"}))
    await hook(herald, owner, receiver, path="/get", body=body, method="GET")
    await store_event(herald, printer, "print.paused", payload={"name": "a.gcode"},
                      printer_data=PRINTER_DATA, occurred_at=WHEN)
    got = {r.path: r for r in await receiver.wait_for(2)}
    post = got["/post"]
    assert post.headers["x-topic"] == "Print Paused"
    assert text_fields(post) == {"topic": "Print Paused", "z": "0.2", "extra": '{"name": "a.gcode"}'}
    assert got["/get"].query == {"topic": "Print Paused", "z": "0.2", "extra": '{"name": "a.gcode"}'}
    assert got["/get"].body == b""


# --- a cancelled print --------------------------------------------------------------------


async def test_a_cancelled_print(app, herald, owner, printer, receiver):
    """OctoPrint fires PrintFailed for a cancel: a hook subscribed to Print Failed gets it as that."""
    simple = json.dumps({"topic": "@topic", "message": "@message", "extra": "@extra",
                         "state": "@state.text", "paused": "@state.flags.paused"})
    await hook(herald, owner, receiver, path="/octoprint-webhooks", body=simple, headers="{}")
    await hook(herald, owner, receiver, path="/herald", body=simple, headers="{}",
               events=["print.started", "print.paused", "print.resumed", "print.failed", "print.cancelled"])
    paused = {**PRINTER_DATA, "state": {"text": "Paused", "flags": {**STATE_PRINTING["flags"], "printing": False,
                                                                     "paused": True}}}
    cancelled = {**FILE_PAYLOAD, "time": 31.2}
    for event_type, payload, data in [("print.started", FILE_PAYLOAD, PRINTER_DATA),
                                      ("print.paused", FILE_PAYLOAD, paused),
                                      ("print.resumed", FILE_PAYLOAD, PRINTER_DATA),
                                      ("print.cancelled", cancelled, {**PRINTER_DATA, "state": {
                                          "text": "Operational", "flags": {"operational": True}}})]:
        await store_event(herald, printer, event_type, payload=payload, printer_data=data, occurred_at=WHEN)
    await receiver.wait_for(3, path="/octoprint-webhooks")
    await receiver.wait_for(4, path="/herald")
    by_path: dict[str, list[dict]] = {}
    for r in receiver.requests:
        by_path.setdefault(r.path, []).append(json.loads(r.body))
    assert by_path["/octoprint-webhooks"] == [
        {"topic": "Print Started", "message": MESSAGES["Print Started"], "extra": FILE_PAYLOAD,
         "state": "Printing", "paused": False},
        {"topic": "Print Paused", "message": MESSAGES["Print Paused"], "extra": FILE_PAYLOAD,
         "state": "Paused", "paused": True},
        {"topic": "Print Failed", "message": MESSAGES["Print Failed"], "extra": {**cancelled, "reason": "cancelled"},
         "state": "Operational", "paused": ""},
    ]
    # Herald's own event for a target that chose it, once (not also as Print Failed).
    assert [b["topic"] for b in by_path["/herald"]] == ["Print Started", "Print Paused", "Print Resumed",
                                                          "Print Cancelled"]
    assert by_path["/herald"][-1]["extra"] == cancelled


# --- per-target messages ------------------------------------------------------------------


async def test_messages_per_target(app, herald, owner, printer, receiver):
    target = await hook(herald, owner, receiver, body=json.dumps({"message": "@message"}), headers="{}",
                        events=["print.started", "print.progress"], progress_step=50,
                        messages={"print.started": "@job.file.name started on @deviceIdentifier",
                                  "print.progress": "@percentCompleteMilestone percent of @job.file.name"})
    shown = service.target_json(herald, target)["messages"]
    assert shown["print.started"] == "@job.file.name started on @deviceIdentifier"
    assert shown["print.done"] == "Your print is done."  # the default where none is set
    await store_event(herald, printer, "print.started", payload=FILE_PAYLOAD, printer_data=PRINTER_DATA)
    await store_event(herald, printer, "print.progress", payload={"progress": 50}, printer_data=PRINTER_DATA)
    got = await receiver.wait_for(2)
    assert [json.loads(r.body)["message"] for r in got] == ["benchy.gcode started on Blane's Printer",
                                                             "50 percent of benchy.gcode"]
    with pytest.raises(Exception) as bad:
        await service.update_target(herald, owner, target, {"messages": {"print.started": "@nosuch"}})
    assert "messages.print.started" in str(bad.value)


async def test_messages_through_the_api_and_the_form(app, herald, owner, client):
    from tests.support.users import login

    csrf = await login(client, "admin@example.com")
    response = await client.post("/api/v1/webhooks", headers={"X-CSRF-Token": csrf}, json={
        "preset": "octoprint_webhooks", "name": "OW", "url": "https://example.com/hook",
        "messages": {"print.done": "@job.file.name is done", "print.failed": ""}})
    assert response.status_code == 201, await response.get_data(as_text=True)
    made = await response.get_json()
    assert made["body"] == PRESETS["octoprint_webhooks"]["body"] and "@snapshot" in made["body"]
    assert made["messages"]["print.done"] == "@job.file.name is done"
    assert made["messages"]["print.failed"] == MESSAGES["Print Failed"]  # empty: the default
    response = await client.patch(f"/api/v1/webhooks/{made['id']}", headers={"X-CSRF-Token": csrf},
                                  json={"messages": {"print.started": "@nosuch started"}})
    problem = await response.get_json()
    assert response.status_code == 422 and problem["details"][0]["field"] == "messages.print.started"
    response = await client.patch(f"/api/v1/webhooks/{made['id']}", headers={"X-CSRF-Token": csrf},
                                  json={"messages": {"print.nope": "x"}})
    assert response.status_code == 422

    page = await (await client.get(f"/webhooks/{made['id']}")).get_data(as_text=True)
    assert 'name="message_print.done"' in page and "@job.file.name is done" in page
    assert f'placeholder="{MESSAGES["Print Paused"]}"' in page
    form = {"csrf_token": csrf, "name": "OW", "url": "https://example.com/hook", "method": "POST",
            "content_type": "json", "headers": "{}", "body": "{}", "events": "print.done", "progress_step": "10",
            "message_print.done": "", "message_print.paused": "Paused: @job.file.name"}
    response = await client.post(f"/webhooks/{made['id']}", form=form)
    assert response.status_code == 302, await response.get_data(as_text=True)
    target = await service.get_target(owner, made["id"])
    assert target.messages == {"print.paused": "Paused: @job.file.name"}
