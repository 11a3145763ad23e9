"""Realistic printers for UI tests: stored rows in three different states."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from appliance.accounts.models import User
from appliance.printers.models import Printer


def printing_status(progress: float = 42.5, left: int = 2345, file: str | None = "benchy.gcode") -> dict:
    return {
        "state": "Printing", "state_id": "printing",
        "temperatures": {"tool0": {"actual": 210.1, "target": 210.0}, "bed": {"actual": 60.2, "target": 60.0},
                         "chamber": {"actual": 31.0, "target": None}},
        "job": {"file": file, "progress": progress, "print_time": 1234, "print_time_left": left, "z": 12.4},
        "last_job": {"file": "cube.gcode", "duration": 3600, "result": "completed"},
    }


def idle_status() -> dict:
    return {
        "state": "Operational", "state_id": "operational",
        "temperatures": {"tool0": {"actual": 24.3, "target": 0}, "bed": {"actual": 23.9, "target": 0}},
        "job": {"file": None, "progress": None, "print_time": None, "print_time_left": None, "z": None},
        "last_job": {"file": "bracket.gcode", "duration": 5400, "result": "failed"},
    }


def paused_status() -> dict:
    return {
        "state": "Paused", "state_id": "paused",
        "temperatures": {"tool0": {"actual": 205.0, "target": 210.0}, "tool1": {"actual": 180.0, "target": 0},
                         "bed": {"actual": 59.8, "target": 60.0}},
        "job": {"file": "vase.gcode", "progress": 77.0, "print_time": 8000, "print_time_left": 2400, "z": 88.2},
        "last_job": None,
    }


async def make_printer(owner: User, name: str, *, status: dict | None, seen: datetime | None,
                       linked: bool = True, purge_warned_at: datetime | None = None) -> Printer:
    printer_id = str(uuid.uuid4())
    return await Printer.create(
        id=printer_id, owner=owner, name=name,
        key_hash=hashlib.sha256(printer_id.encode()).hexdigest() if linked else None,
        linked_at=seen, last_seen_at=seen, status=status, status_updated_at=seen,
        online=seen is not None, purge_warned_at=purge_warned_at,
    )


async def three_printers(owner: User, now: datetime) -> list[Printer]:
    """Printing (seen just now), idle after a failed job, and offline (silent for an hour)."""
    return [
        await make_printer(owner, "Prusa MK4", status=printing_status(), seen=now - timedelta(seconds=20)),
        await make_printer(owner, "Ender 3", status=idle_status(), seen=now - timedelta(seconds=50)),
        await make_printer(owner, "Voron 2.4", status=paused_status(), seen=now - timedelta(hours=1)),
    ]


def view_of(printer: Printer, status: dict | None, seen: datetime) -> dict:
    """What the printers area hands status listeners: the contract's ``<printer>`` shape."""
    return {"id": printer.id, "name": printer.name, "linked": True, "online": True,
            "last_seen": seen.isoformat().replace("+00:00", "Z"), "status": status}
