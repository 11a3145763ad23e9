"""The dashboard's rules: turn a printer's stored row or live status into what one card shows.

A card is a plain dict of display-ready values (labels, formatted numbers, ISO
times for the browser to keep fresh), built the same way for the first page
render and for every live update, so both always agree. Times the browser
re-renders as they age (``last_seen``, ``finish_at``) are also formatted here
for the first paint, with the same rules as ``static/js/herald.js``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from appliance.accounts.models import User
from appliance.core.times import duration_text, time_ago, user_zone
from appliance.printers.event_types import JOB_ACTIVE
from appliance.printers.models import Printer

# state_id -> (words, badge colour). Words first: the card must read without colour.
STATES: dict[str, tuple[str, str]] = {
    "printing": ("Printing", "info"),
    "resuming": ("Resuming", "info"),
    "finishing": ("Finishing", "info"),
    "pausing": ("Pausing", "warn"),
    "paused": ("Paused", "warn"),
    "cancelling": ("Cancelling", "warn"),
    "operational": ("Ready", "ok"),
    "connecting": ("Connecting", "idle"),
    "offline": ("Printer disconnected", "idle"),
    "error": ("Error", "bad"),
}
# Herald's own views of a printer, beyond what OctoPrint reports.
SILENT = ("Offline", "bad")
UNLINKED = ("Unlinked", "idle")
NEVER_SEEN = ("Waiting for first check-in", "idle")

COUNTING_DOWN = frozenset({"printing", "resuming", "finishing"})
RESULTS = {"completed": ("Completed", "ok"), "failed": ("Failed", "bad"), "cancelled": ("Cancelled", "warn")}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def clock_text(moment: datetime, now: datetime, zone: ZoneInfo) -> str:
    """The wall-clock time in the user's zone: '14:35', or 'Mon 14:35' when not today."""
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%a %H:%M")


def _temperature_label(key: str, tool_count: int) -> str:
    if key == "bed":
        return "Bed"
    if key == "chamber":
        return "Chamber"
    if key.startswith("tool") and key[4:].isdigit():
        return "Tool" if tool_count == 1 else f"Tool {int(key[4:]) + 1}"
    return key.capitalize()


def _temp_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def temperatures(raw: Any) -> list[dict[str, str]]:
    """Tools first (in order), then bed, then chamber and anything else."""
    if not isinstance(raw, dict):
        return []
    tools = sorted((k for k in raw if k.startswith("tool")), key=lambda k: (len(k), k))
    rest = [k for k in ("bed", "chamber") if k in raw] + sorted(
        k for k in raw if not k.startswith("tool") and k not in ("bed", "chamber")
    )
    rows = []
    for key in tools + rest:
        reading = raw.get(key)
        if not isinstance(reading, dict):
            continue
        actual, target = _number(reading.get("actual")), _number(reading.get("target"))
        if actual is None and target is None:
            continue
        if target is None:
            value = f"{_temp_value(actual)} °C"
        elif target == 0:
            value = f"{_temp_value(actual)} °C, off"
        else:
            value = f"{_temp_value(actual)} / {_temp_value(target)} °C"
        rows.append({"key": key, "label": _temperature_label(key, len(tools)), "value": value})
    return rows


def view_from_printer(printer: Printer, herald: Any = None) -> dict[str, Any]:
    """A stored printer in the contract's ``<printer>`` shape, plus what only the dashboard needs.

    With ``herald``, a status this process accepted but has not flushed yet wins
    over the stored row (see services.printers).
    """
    if herald is not None:
        from appliance.printers.views import printer_view

        view = dict(printer_view(herald, printer))
        view["status_at"] = view["last_seen"]
    else:
        view = {
            "id": printer.id,
            "name": printer.name,
            "linked": printer.key_hash is not None,
            "online": printer.online,
            "last_seen": _iso(printer.last_seen_at),
            "status": printer.status,
            "status_at": _iso(printer.status_updated_at or printer.last_seen_at),
        }
    view["purge_warned_at"] = _iso(printer.purge_warned_at)
    return view


def build_card(view: dict[str, Any], *, now: datetime, zone: ZoneInfo, offline_after: int,
               purge_after_days: int = 0) -> dict[str, Any]:
    """Everything one dashboard card shows, from a printer view (stored or just pushed)."""
    raw_status = view.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    last_seen = _parse_iso(view.get("last_seen"))
    status_at = _parse_iso(view.get("status_at")) or last_seen
    linked = bool(view.get("linked", True))
    # Silent for too long, or recorded offline (OctoPrint shut down cleanly, offline detection).
    silent = (last_seen is None or (now - last_seen).total_seconds() > offline_after
              or view.get("online") is False)
    state_id = str(status.get("state_id") or "") or None
    state_text = status.get("state") if isinstance(status.get("state"), str) else None

    if not linked:
        label, tone = UNLINKED
    elif last_seen is None:
        label, tone = NEVER_SEEN
    elif silent:
        label, tone = SILENT
    else:
        label, tone = STATES.get(state_id or "", (state_text or "Unknown", "idle"))
    live_label, live_tone = STATES.get(state_id or "", (state_text or "Unknown", "idle"))
    detail = state_text if state_text and state_text.lower() != live_label.lower() else None

    raw_job = status.get("job")
    job: dict[str, Any] = raw_job if isinstance(raw_job, dict) else {}
    progress = _number(job.get("progress"))
    if progress is not None:
        progress = min(100.0, max(0.0, progress))
    in_job = state_id in JOB_ACTIVE
    time_left = _number(job.get("print_time_left")) if in_job else None
    counting = False
    finish_at: datetime | None = None
    if state_id in COUNTING_DOWN and time_left is not None and status_at is not None:
        counting = True
        finish_at = status_at + timedelta(seconds=time_left)
        time_left = max(0.0, time_left - max(0.0, (now - status_at).total_seconds()))
    file = job.get("file") if isinstance(job.get("file"), str) and job.get("file") else None
    z = _number(job.get("z"))

    last_job_raw = status.get("last_job") if isinstance(status.get("last_job"), dict) else None
    last_job = None
    if last_job_raw and last_job_raw.get("result") in RESULTS:
        result_label, result_tone = RESULTS[last_job_raw["result"]]
        last_file = last_job_raw.get("file") if isinstance(last_job_raw.get("file"), str) else None
        last_job = {
            "result": last_job_raw["result"],
            "label": result_label,
            "tone": result_tone,
            "file": last_file or None,
            "duration": duration_text(_number(last_job_raw.get("duration"))) or None,
        }

    purge_warning = None
    warned_at = _parse_iso(view.get("purge_warned_at"))
    if warned_at is not None and silent:
        removal = (last_seen + timedelta(days=purge_after_days)) if (last_seen and purge_after_days) else None
        purge_warning = (
            "Herald has not heard from this printer for days"
            + (f" and will remove it on {removal.astimezone(zone).strftime('%d %b %Y')}" if removal else "")
            + ". Start OctoPrint with the Herald plugin to keep it."
        )

    return {
        "id": view["id"],
        "name": view.get("name") or "Printer",
        "linked": linked,
        "online": linked and not silent,
        "never_seen": last_seen is None,
        "state_id": state_id,
        "state_label": label,
        "state_tone": tone,
        "live_state_label": live_label,
        "live_state_tone": live_tone,
        "state_detail": detail,
        "in_job": in_job,
        "file": file,
        "progress": progress if in_job else None,
        "progress_text": f"{math.floor(progress)} %" if in_job and progress is not None else None,
        "time_left": time_left,
        "time_left_text": duration_text(time_left) if time_left is not None else None,
        "counting": counting,
        "finish_at": _iso(finish_at),
        "finish_text": clock_text(finish_at, now, zone) if finish_at else None,
        # An offline printer's last readings are not its temperatures now: none are shown.
        "temperatures": [] if silent else temperatures(status.get("temperatures")),
        "z_text": f"{z:.2f} mm" if z is not None and in_job else None,
        "last_seen": _iso(last_seen),
        "last_seen_text": time_ago(last_seen, now),
        "last_job": last_job,
        "purge_warning": purge_warning,
        "has_status": bool(status),
    }


async def dashboard_cards(user: User, *, now: datetime, offline_after: int,
                          purge_after_days: int = 0, herald: Any = None) -> list[dict[str, Any]]:
    """One card per printer of ``user``, sorted by name."""
    zone = user_zone(user.time_zone)
    printers = await Printer.filter(owner_id=user.id).order_by("name", "id")
    return [build_card(view_from_printer(p, herald), now=now, zone=zone, offline_after=offline_after,
                       purge_after_days=purge_after_days) for p in printers]


async def printer_index(user_id: int) -> dict[str, tuple]:
    """What the live stream compares to notice added, removed, renamed or re-stored printers."""
    rows = await Printer.filter(owner_id=user_id).values_list(
        "id", "name", "key_hash", "purge_warned_at", "status_updated_at", "last_seen_at"
    )
    return {row[0]: (row[1], row[2] is not None, row[3], row[4] or row[5]) for row in rows}


async def cards_for(user: User, printer_ids: list[str], *, now: datetime, offline_after: int,
                    purge_after_days: int = 0, herald: Any = None) -> list[dict[str, Any]]:
    zone = user_zone(user.time_zone)
    printers = await Printer.filter(owner_id=user.id, id__in=printer_ids)
    return [build_card(view_from_printer(p, herald), now=now, zone=zone, offline_after=offline_after,
                       purge_after_days=purge_after_days) for p in printers]
