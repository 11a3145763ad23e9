"""Reading a printer dict: its condition, its job and how long is left. Language-free."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BUSY_STATES = {"connecting", "resuming", "cancelling", "finishing"}
_EXTENSIONS = re.compile(r"\.(gcode|gco|g|bgcode|gc)$", re.IGNORECASE)


def condition(printer: dict[str, Any]) -> str:
    """One of never_seen, unreachable, no_status, disconnected, idle, printing, paused, error, busy."""
    status = printer.get("status")
    if status is None and not printer.get("last_seen"):
        return "never_seen"
    if not printer.get("online"):
        return "unreachable"
    if not isinstance(status, dict):
        return "no_status"
    state_id = status.get("state_id")
    if state_id == "offline":
        return "disconnected"
    if state_id == "operational":
        return "idle"
    if state_id == "printing":
        return "printing"
    if state_id in ("paused", "pausing"):
        return "paused"
    if state_id == "error":
        return "error"
    return "busy"


def state_id(printer: dict[str, Any]) -> str:
    status = printer.get("status") or {}
    return str(status.get("state_id") or "")


def state_text(printer: dict[str, Any]) -> str:
    """OctoPrint's state text, without the "Error:" it puts before error details."""
    status = printer.get("status") or {}
    text = str(status.get("state") or "").strip()
    return re.sub(r"^(offline after )?error:?\s*", "", text, flags=re.IGNORECASE).strip()


def spoken_file(name: Any) -> str | None:
    """``prints/Benchy_v2.gcode`` -> ``Benchy v2``; None when the name is hidden or empty."""
    if not isinstance(name, str) or not name.strip():
        return None
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    base = _EXTENSIONS.sub("", base).replace("_", " ").strip()
    return base or None


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Job:
    file: str | None
    progress: float | None
    remaining: float | None  # seconds, allowing for the time since the last check-in
    z: float | None


def current_job(printer: dict[str, Any], now: datetime) -> Job:
    status = printer.get("status") or {}
    job = status.get("job") or {}
    if not isinstance(job, dict):
        job = {}
    progress = _number(job.get("progress"))
    left = _number(job.get("print_time_left"))
    if left is not None and condition(printer) == "printing":
        seen = parse_time(printer.get("last_seen"))
        if seen is not None:
            left = max(0.0, left - max(0.0, (now - seen).total_seconds()))
    if progress is not None:
        progress = min(100.0, max(0.0, progress))
    return Job(file=spoken_file(job.get("file")), progress=progress, remaining=left,
               z=_number(job.get("z")))


@dataclass(frozen=True)
class LastJob:
    file: str | None
    result: str | None
    duration: float | None


def last_job(printer: dict[str, Any]) -> LastJob | None:
    status = printer.get("status") or {}
    last = status.get("last_job")
    if not isinstance(last, dict) or not (last.get("result") or last.get("file")):
        return None
    result = last.get("result") if last.get("result") in ("completed", "failed", "cancelled") else None
    return LastJob(file=spoken_file(last.get("file")), result=result, duration=_number(last.get("duration")))


@dataclass(frozen=True)
class Temperature:
    part: str  # "tool" | "bed" | "chamber"
    index: int | None  # tool number (1-based) when there are several tools
    actual: float | None
    target: float | None


def temperatures(printer: dict[str, Any]) -> list[Temperature]:
    status = printer.get("status") or {}
    temps = status.get("temperatures") or {}
    if not isinstance(temps, dict):
        return []
    tools = sorted((k for k in temps if k.startswith("tool")), key=lambda k: (len(k), k))
    found: list[Temperature] = []
    for position, key in enumerate(tools, start=1):
        found.append(_temperature("tool", position if len(tools) > 1 else None, temps[key]))
    for part in ("bed", "chamber"):
        if part in temps:
            found.append(_temperature(part, None, temps[part]))
    return [t for t in found if t.actual is not None]


def _temperature(part: str, index: int | None, value: Any) -> Temperature:
    value = value if isinstance(value, dict) else {}
    return Temperature(part, index, _number(value.get("actual")), _number(value.get("target")))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
