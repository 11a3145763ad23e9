"""What readers see of a printer: the contract's ``<printer>`` object (GET /api/v1/printers, the
dashboard, Alexa), with this process's fresher status where it has one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from appliance.accounts.models import User
from appliance.core.errors import NotFound
from appliance.core.herald import Herald
from appliance.core.times import iso_utc
from appliance.printers.models import Printer
from appliance.printers.state import printer_state


def build_view(*, printer_id: str, name: str, linked: bool, online: bool,
               last_seen: datetime | None, status: dict[str, Any] | None) -> dict[str, Any]:
    """The contract's ``<printer>`` object."""
    return {"id": printer_id, "name": name, "linked": linked, "online": online,
            "last_seen": iso_utc(last_seen), "status": status}


def printer_view(herald: Herald, printer: Printer) -> dict[str, Any]:
    """The contract's ``<printer>`` for a Printer row, with this process's fresher status if any."""
    state = printer_state(herald)
    live = state.live.get(printer.id)
    status, last_seen, online = printer.status, printer.last_seen_at, printer.online
    online = online or printer.id in state.coming_online
    if live is not None and (last_seen is None or live.seen_at >= last_seen):
        status, last_seen = live.status, live.seen_at
    return build_view(printer_id=printer.id, name=printer.name, linked=printer.key_hash is not None,
                      online=online and printer.key_hash is not None, last_seen=last_seen,
                      status=status)


async def printer_views(herald: Herald, user: User) -> list[dict[str, Any]]:
    printers = await Printer.filter(owner_id=user.id).order_by("name", "created_at")
    return [printer_view(herald, printer) for printer in printers]


async def printer_list(user: User) -> list[Printer]:
    """The user's printers by name (rows, for pages that pick among them)."""
    return await Printer.filter(owner_id=user.id).order_by("name", "created_at")


async def owned_printer(user: User, printer_id: str) -> Printer:
    """The user's printer, or 404 (also for another user's printer: its existence is not told)."""
    printer = await Printer.get_or_none(id=printer_id, owner_id=user.id)
    if printer is None:
        raise NotFound("No such printer.")
    return printer
