"""Printer events: idempotent storage, sequence, multipart snapshots, listeners in the transaction."""

from __future__ import annotations

import json
from datetime import timedelta

from appliance.printers.api_routes import EVENT_LIMIT
from appliance.printers.models import Event, Job, Printer
from tests.support.printers import bearer, event_body, make_printer
from tests.support.users import make_user

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2000 + b"\xff\xd9"


async def post(client, key, body):
    return await client.post("/api/v1/printer/events", json=body, headers=bearer(key))


def multipart(parts: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    boundary = "herald-test-boundary"
    chunks = []
    for name, filename, data, ctype in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {ctype}\r\n\r\n".encode()
                      + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


async def test_events_stored_once_with_sequence_and_listeners(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    calls = []

    async def listener(event, printer_row, connection):
        # Runs inside the transaction: the event is visible on this connection.
        assert await Event.filter(id=event.id).using_db(connection).exists()
        calls.append((event.event_id, event.sequence, printer_row.id))

    herald.hooks.event_listeners.append(listener)
    first = await post(client, key, event_body("a"))
    assert first.status_code == 202
    assert await first.get_json() == {"id": "a", "sequence": 1, "duplicate": False}
    repeat = await post(client, key, event_body("a"))
    assert repeat.status_code == 202 and (await repeat.get_json())["duplicate"] is True
    second = await post(client, key, event_body("b", "print.done", payload={"name": "benchy.gcode", "time": 50}))
    assert (await second.get_json())["sequence"] == 2
    assert calls == [("a", 1, printer.id), ("b", 2, printer.id)]
    events = await Event.filter(printer_id=printer.id).order_by("sequence")
    assert [(e.event_id, e.type) for e in events] == [("a", "print.started"), ("b", "print.done")]
    assert events[0].occurred_at.utcoffset() == timedelta(0)
    assert events[0].occurred_at.hour == 13  # 14:03+01:00 is 13:03 UTC
    assert events[0].printer_data["state"]["text"] == "Printing"
    assert (await Printer.get(id=printer.id)).event_sequence == 2
    job = await Job.get(printer_id=printer.id)
    assert (job.file, job.result, job.duration) == ("benchy.gcode", "completed", 50)


async def test_failing_listener_rolls_back_the_event(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)

    async def broken(event, printer_row, connection):
        raise RuntimeError("listener failed")

    herald.hooks.event_listeners.append(broken)
    response = await post(client, key, event_body("x"))
    assert response.status_code == 500
    assert await Event.filter(printer_id=printer.id).count() == 0
    assert (await Printer.get(id=printer.id)).event_sequence == 0
    herald.hooks.event_listeners.remove(broken)
    assert (await post(client, key, event_body("x"))).status_code == 202


async def test_event_bad_input(client, herald):
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    naive = event_body(occurred_at="2026-11-22T14:03:07")
    response = await post(client, key, naive)
    assert response.status_code == 422 and "occurred_at" in (await response.get_json())["message"]
    response = await post(client, key, event_body(type_="printer.offline"))
    assert response.status_code == 422 and "type" in (await response.get_json())["message"]
    response = await post(client, key, {"id": "x", "type": "print.started"})
    assert response.status_code == 422 and "occurred_at" in (await response.get_json())["message"]
    response = await client.post("/api/v1/printer/events", data=b"{", headers={**bearer(key), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert await Event.all().count() == 0


async def test_multipart_event_with_snapshot(client, herald, settings):
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    body, ctype = multipart([("event", "", json.dumps(event_body("s")).encode(), "application/json"),
                             ("snapshot", "snap.jpg", JPEG, "image/jpeg")])
    response = await client.post("/api/v1/printer/events", data=body, headers={**bearer(key), "Content-Type": ctype})
    assert response.status_code == 202, await response.get_data(as_text=True)
    event = await Event.get(event_id="s")
    stored = settings.data_path / event.snapshot_path
    assert stored.read_bytes() == JPEG

    body, ctype = multipart([("event", "", json.dumps(event_body("t")).encode(), "application/json"),
                             ("snapshot", "snap.png", b"\x89PNG\r\n", "image/png")])
    response = await client.post("/api/v1/printer/events", data=body, headers={**bearer(key), "Content-Type": ctype})
    assert response.status_code == 415
    big = b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024)
    body, ctype = multipart([("event", "", json.dumps(event_body("u")).encode(), "application/json"),
                             ("snapshot", "snap.jpg", big, "image/jpeg")])
    response = await client.post("/api/v1/printer/events", data=body, headers={**bearer(key), "Content-Type": ctype})
    assert response.status_code == 413
    body, ctype = multipart([("snapshot", "snap.jpg", JPEG, "image/jpeg")])
    response = await client.post("/api/v1/printer/events", data=body, headers={**bearer(key), "Content-Type": ctype})
    assert response.status_code == 400 and "event" in (await response.get_json())["message"]
    assert await Event.all().count() == 1


async def test_events_rate_limited_per_printer(client, herald):
    user = await make_user()
    _a, key_a = await make_printer(herald, user, "A")
    _b, key_b = await make_printer(herald, user, "B")
    limit = EVENT_LIMIT.count
    codes = [(await post(client, key_a, event_body(f"e{i}", "print.progress"))).status_code
             for i in range(limit + 1)]
    assert codes[:limit] == [202] * limit and codes[limit] == 429
    assert (await post(client, key_b, event_body("other"))).status_code == 202


async def test_back_to_back_prints_fit_the_event_limit(client, herald):
    """Three short prints in a row, each as the plugin sends it (started, 99 progress, done)."""
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    codes = []
    for n in range(3):
        bodies = [event_body(f"s{n}", "print.started")]
        bodies += [event_body(f"p{n}-{p}", "print.progress", payload={"progress": p}) for p in range(1, 100)]
        bodies.append(event_body(f"d{n}", "print.done", payload={"time": 5}))
        codes += [(await post(client, key, body)).status_code for body in bodies]
    assert len(codes) == 303 and set(codes) == {202}
