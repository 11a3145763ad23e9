"""Reading a printer dict: its condition, its job and how long is left. Language-free."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BUSY_STATES = {"connecting", "resuming", "cancelling", "finishing"}
_EXTENSIONS = re.compile(r"\.(gcode|gco|g|bgcode|gc|ufp|stl|3mf|obj|step|stp)$", re.IGNORECASE)
# What slicers append to a file name (PrusaSlicer's "{input_filename_base}_{layer_height}mm_
# {filament_type}_{printer_model}_{print_time}", Cura's "CE3_" printer prefix, OrcaSlicer's
# nozzle and plate), none of which a person says: each is one word of the name.
_MATERIALS = ("pla", "pla+", "petg", "pet", "abs", "asa", "tpu", "tpe", "pa", "pa6", "pa12", "pc", "nylon",
              "hips", "pva", "pp", "cf", "pla-cf", "petg-cf", "pa-cf", "flex", "silk", "pcabs", "pc-abs")
_SLICER_WORDS = [
    r"\d+(?:[.,]\d+)?mm",                        # layer height or nozzle: 0.2mm, 0,15mm
    r"\d+(?:[.,]\d+)?n",                         # OrcaSlicer nozzle: 0.4n
    r"(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?",      # print time: 1h2m, 1d2h3m, 45m, 23m17s
    r"\d+(?:[.,]\d+)?(?:x\d+(?:[.,]\d+)?){1,2}(?:mm)?",  # dimensions: 20x20x10mm, 100x100
    r"mk\d(?:\.\d)?s?\+?(?:mmu\d?s?)?",          # Prusa models: MK3S, MK3S+, MK2.5S, MK4, MK3SMMU2S
    r"mini\+?|xl|core\s?one|ce\d(?:pro|s\d)?|cr\d+|um\d|ums\d|ender\d(?:pro|v\d|s\d)?",
    r"plate_?\d+", r"\d+(?:[.,]\d+)?%", r"\d{2,3}c",  # Orca plates, infill 20%, temperature 215C
]
_SLICER_WORD = re.compile("(?:" + "|".join(_SLICER_WORDS) + "|" + "|".join(
    re.escape(m) for m in _MATERIALS) + ")", re.IGNORECASE)
_WORDS = re.compile(r"[\s_]+")


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
    """The name a person would say for a job file: ``prints/Benchy_v2.gcode`` -> ``Benchy v2``,
    ``benchy_0.2mm_PLA_MK3S_1h2m.gcode`` -> ``benchy``, ``CE3_cube_20x20x20.gcode`` -> ``cube``.
    Slicer words are dropped from both ends only, so a name that is nothing else keeps them
    (``PLA_0.2mm.gcode`` stays ``PLA 0.2mm``). None when the name is hidden or empty."""
    if not isinstance(name, str) or not name.strip():
        return None
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    while _EXTENSIONS.search(base):  # "cube.stl.gcode"
        base = _EXTENSIONS.sub("", base)
    words = [w for w in _WORDS.split(base.replace("-", " - ")) if w]
    words = [w for w in words if w != "-"] if len(words) > 1 else words
    if not words:
        return None

    def slicer(word: str) -> bool:
        return bool(word) and _SLICER_WORD.fullmatch(word.strip("()[]")) is not None

    start, end = 0, len(words)
    while end > start and slicer(words[end - 1]):
        end -= 1
    while start < end and slicer(words[start]):
        start += 1
    kept = words[start:end] or words
    return " ".join(kept).strip() or None


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
