"""Helpers for printer tests: a linked printer with its key, and a sample status."""

from __future__ import annotations

from appliance.printers.manage import create_printer

STATUS = {
    "state": "Printing",
    "state_id": "printing",
    "temperatures": {"tool0": {"actual": 210.1, "target": 210.0}, "bed": {"actual": 60.2, "target": 60.0}},
    "job": {"file": "benchy.gcode", "progress": 42.5, "print_time": 1234, "print_time_left": 2345, "z": 12.4},
    "last_job": {"file": "cube.gcode", "duration": 3600, "result": "completed"},
}


async def make_printer(herald, user, name: str = "Prusa MK4"):
    """A linked printer; returns (printer, key)."""
    created = await create_printer(herald, user, name)
    return created.printer, created.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def event_body(event_id: str = "7b0e0b8e-0000-4000-8000-000000000001", type_: str = "print.started",
               **extra) -> dict:
    body = {"id": event_id, "type": type_, "occurred_at": "2026-11-22T14:03:07+01:00",
            "payload": {"name": "benchy.gcode", "path": "benchy.gcode", "origin": "local", "size": 242038},
            "printer_data": {"state": {"text": "Printing"}, "progress": {"completion": 0.0}}}
    body.update(extra)
    return body


async def post_events_until_refused(client, key: str, *, pad: int, tries: int):
    """Post padded progress events until one is not taken (a full disk); returns (response, body),
    or None when every one was taken."""
    import uuid

    for n in range(tries):
        body = event_body(str(uuid.uuid4()), "print.progress", payload={"progress": n % 99 + 1, "pad": "x" * pad})
        response = await client.post("/api/v1/printer/events", json=body, headers=bearer(key))
        if response.status_code != 202:
            return response, body
    return None
