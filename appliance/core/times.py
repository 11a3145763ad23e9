"""How Herald writes moments: ISO 8601 in UTC for programs, "3 minutes ago" and the user's zone for people."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def iso_utc(moment: datetime | None) -> str | None:
    """``2026-11-22T13:03:07.123456Z``, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def user_zone(name: str | None) -> ZoneInfo:
    """The user's time zone; UTC when none is set or the name is unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def time_ago(moment: datetime | None, now: datetime) -> str:
    """'just now', '2 minutes ago', '3 hours ago' (the same rounding as herald.js)."""
    if moment is None:
        return "never"
    seconds = max(0, round((now - moment).total_seconds()))
    if seconds < 45:
        return "just now"
    minutes = round(seconds / 60)
    if minutes < 60:
        return _plural(minutes, "minute") + " ago"
    hours = round(minutes / 60)
    if hours < 24:
        return _plural(hours, "hour") + " ago"
    return _plural(round(hours / 24), "day") + " ago"


def duration_text(seconds: float | None) -> str:
    """'45 s', '12 min', '1 h 5 min', '2 d 3 h': the one way Herald writes a duration (herald.js's
    Herald.duration rounds the same way; the ``duration`` template filter uses this)."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
