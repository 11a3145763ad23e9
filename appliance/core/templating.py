"""Jinja filters for pages, registered in app.py.

Times: one way to show a moment, in the logged-in user's time zone: ``{{ moment|localtime }}`` ("22 Nov 2026,
07:34 CET"), ``{{ moment|localtime("time") }}``, ``{{ moment|ago }}`` ("3 minutes
ago", the dashboard's wording) and ``{{ moment|isoutc }}`` for ``<time datetime>``.
A moment may be an aware or naive (UTC) datetime or an ISO 8601 string.

Durations: ``{{ seconds|duration }}`` ("45 s", "1 h 5 min"), the same words everywhere.

``{{ url|is_loopback }}``: whether an address points at this machine only (127.0.0.1,
::1, localhost), which OctoPrint on another machine cannot reach.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from markupsafe import Markup, escape

from appliance.core.herald import current_herald
from appliance.core.times import duration_text, iso_utc, time_ago, user_zone

FORMATS = {
    "datetime": "%-d %b %Y, %H:%M %Z",
    "seconds": "%-d %b %Y, %H:%M:%S %Z",
    "date": "%-d %b %Y",
    "time": "%H:%M",
    "time_seconds": "%H:%M:%S",
}


def as_utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def zone_of(context) -> ZoneInfo:
    """The zone of the user the page is for (``current_user``, else ``user``), else UTC."""
    user = context.get("current_user") or context.get("user")
    return user_zone(getattr(user, "time_zone", None))


def format_local(value: Any, zone: ZoneInfo, style: str = "datetime") -> str:
    moment = as_utc(value)
    if moment is None:
        return ""
    return moment.astimezone(zone).strftime(FORMATS.get(style, style))


@pass_context
def localtime(context, value: Any, style: str = "datetime") -> str:
    return format_local(value, zone_of(context), style)


def ago(value: Any) -> str:
    """'just now', '3 minutes ago', 'never' (the dashboard's and herald.js's wording)."""
    return time_ago(as_utc(value), current_herald().clock.now())


def isoutc(value: Any) -> str:
    return iso_utc(as_utc(value)) or ""


@pass_context
def zone_name(context) -> str:
    return zone_of(context).key


def is_loopback(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_breaks(url: str | None) -> Markup:
    """The URL, escaped, with a line-break chance (<wbr>) after each / . ? & = so a long URL
    wraps between its parts on a phone instead of mid-word."""
    text = str(escape(url or ""))
    return Markup(re.sub(r"(/+|[.?=]|&amp;)", r"\1<wbr>", text))


def register(app) -> None:
    app.add_template_filter(is_loopback, "is_loopback")
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(ago, "ago")
    app.add_template_filter(isoutc, "isoutc")
    app.add_template_filter(duration_text, "duration")
    app.add_template_filter(url_breaks, "url_breaks")
    app.add_template_global(zone_name, "zone_name")
