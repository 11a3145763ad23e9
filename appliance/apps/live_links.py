"""Live links: a read-only page of one printer for anyone holding the link, until it expires or ends.

The link's secret (the last part of its URL) is shown once and stored as a SHA-256 hash; the
``LiveId`` names the link in lists and in the app API's answer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.accounts.models import User
from appliance.apps.models import AppConnection, LiveLink
from appliance.core.db import shielded
from appliance.core.errors import Invalid, NotFound
from appliance.core.herald import Herald
from appliance.core.secrets import new_token, token_hash
from appliance.printers.models import Event, Printer
from appliance.printers.views import owned_printer, printer_view

MIN_HOURS, MAX_HOURS, DEFAULT_HOURS = 1, 17520, 24
LIVE_TOKEN_PREFIX = "hll_"
_PRINT_ENDS = ("print.done", "print.failed", "print.cancelled")


@dataclass(frozen=True)
class NewLiveLink:
    link: LiveLink
    url: str
    short_url: str


def clean_hours(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_HOURS
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        hours = int(value)
    except (TypeError, ValueError, OverflowError):
        raise Invalid(f"ExpirationHours must be a whole number of hours from {MIN_HOURS} to {MAX_HOURS}.",
                      field="ExpirationHours") from None
    if not MIN_HOURS <= hours <= MAX_HOURS:
        raise Invalid(f"ExpirationHours must be from {MIN_HOURS} to {MAX_HOURS} (two years); got {hours}.",
                      field="ExpirationHours")
    return hours


def link_urls(herald: Herald, token: str) -> tuple[str, str]:
    base = herald.settings.base_url
    return f"{base}/live/{token}", f"{base}/l/{token}"


async def create_live_link(herald: Herald, owner: User, printer_id: str, hours: Any = None,
                           end_when_print_complete: bool = False,
                           connection: AppConnection | None = None) -> NewLiveLink:
    printer = await owned_printer(owner, printer_id)
    hours = clean_hours(hours)
    token = new_token(LIVE_TOKEN_PREFIX)
    now = herald.clock.now()
    link = await shielded(LiveLink.create(
        live_id="live_" + secrets.token_hex(8), token_hash=token_hash(token), owner_id=owner.id,
        printer_id=printer.id, connection_id=connection.id if connection else None, created_at=now,
        expires_at=now + timedelta(hours=hours), end_when_print_complete=bool(end_when_print_complete),
    ))
    url, short = link_urls(herald, token)
    return NewLiveLink(link=link, url=url, short_url=short)


async def create_for_connection(herald: Herald, connection: AppConnection, hours: Any,
                                end_when_print_complete: Any) -> NewLiveLink:
    owner = await User.get_or_none(id=connection.user_id)
    if owner is None or connection.printer_id is None:
        raise NotFound("No such App Connection.")
    if end_when_print_complete is not None and not isinstance(end_when_print_complete, bool):
        raise Invalid("EndWhenCurrentPrintIsComplete must be true or false.", field="EndWhenCurrentPrintIsComplete")
    return await create_live_link(herald, owner, connection.printer_id, hours, bool(end_when_print_complete),
                                  connection=connection)


def is_active(link: LiveLink, now: datetime) -> bool:
    return link.ended_at is None and link.expires_at > now


async def live_links(herald: Herald, owner: User, printer_id: str) -> list[LiveLink]:
    """A printer's live links that still work, newest first."""
    printer = await owned_printer(owner, printer_id)
    now = herald.clock.now()
    return await LiveLink.filter(printer_id=printer.id, ended_at=None, expires_at__gt=now).order_by("-created_at")


async def revoke_live_link(herald: Herald, owner: User, printer_id: str, live_id: str) -> LiveLink:
    link = await LiveLink.get_or_none(live_id=live_id, printer_id=printer_id, owner_id=owner.id, ended_at=None)
    if link is None:
        raise NotFound("No such live link.")
    link.ended_at = herald.clock.now()
    link.ended_reason = "revoked"
    await shielded(link.save(update_fields=["ended_at", "ended_reason"]))
    return link


_GONE = "This live link has expired or was ended by its owner."


async def open_live_link(herald: Herald, token: str) -> tuple[LiveLink, dict[str, Any]]:
    """The link and its printer's view for a viewer holding the link; NotFound once it ended."""
    link = await LiveLink.get_or_none(token_hash=token_hash(token or "")) if token else None
    if link is None or not is_active(link, herald.clock.now()):
        raise NotFound(_GONE, code="live_link_gone")
    printer = await Printer.get_or_none(id=link.printer_id)
    if printer is None:
        raise NotFound(_GONE, code="live_link_gone")
    return link, printer_view(herald, printer)


def watch_summary(view: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What the live page shows: state, progress, time left, finish time."""
    status = view.get("status") or {}
    job = status.get("job") or {}
    left = job.get("print_time_left")
    finish = now + timedelta(seconds=left) if isinstance(left, int | float) and left >= 0 else None
    return {"name": view["name"], "online": view["online"], "state": status.get("state") or "Unknown",
            "state_id": status.get("state_id"), "file": job.get("file"), "progress": job.get("progress"),
            "time_left": left, "finish_at": finish, "last_seen": view.get("last_seen")}


async def latest_snapshot(herald: Herald, link: LiveLink) -> Path | None:
    """The newest event snapshot of the link's printer still on disk, or None."""
    events = await (Event.filter(printer_id=link.printer_id, snapshot_path__not_isnull=True)
                    .order_by("-sequence").limit(5).values_list("snapshot_path", flat=True))
    for relative in events:
        path = herald.settings.data_path / str(relative)
        if path.is_file():
            return path
    return None


async def end_with_print(herald: Herald, event: Event, printer: Printer, connection) -> None:
    """An event listener: a print's end ends the links made to last only as long as it."""
    if event.type not in _PRINT_ENDS:
        return
    await (LiveLink.filter(printer_id=printer.id, end_when_print_complete=True, ended_at=None)
           .using_db(connection).update(ended_at=herald.clock.now(), ended_reason="print complete"))
