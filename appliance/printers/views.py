"""What readers see of a printer: the contract's ``<printer>`` object (GET /api/v1/printers, the
dashboard, Alexa), with this process's fresher status where it has one."""

from __future__ import annotations

from datetime import datetime, timedelta
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


def is_online(herald: Herald, *, printer_id: str, linked: bool, recorded_online: bool,
              last_seen: datetime | None) -> bool:
    """The one rule every reader uses (API, dashboard, Alexa): a printer is online when it is
    linked, recorded online (or checked in here since; a clean OctoPrint shutdown or offline
    detection records it offline), and heard from within ``offline_after`` seconds, so a
    printer is never called idle in one place while another shows it Offline."""
    if not linked or last_seen is None:
        return False
    if not (recorded_online or printer_id in printer_state(herald).coming_online):
        return False
    return herald.clock.now() - last_seen <= timedelta(seconds=herald.settings.offline_after)


def printer_view(herald: Herald, printer: Printer) -> dict[str, Any]:
    """The contract's ``<printer>`` for a Printer row, with this process's fresher status if any."""
    state = printer_state(herald)
    live = state.live.get(printer.id)
    status, last_seen = printer.status, printer.last_seen_at
    if live is not None and (last_seen is None or live.seen_at >= last_seen):
        status, last_seen = live.status, live.seen_at
    linked = printer.key_hash is not None
    online = is_online(herald, printer_id=printer.id, linked=linked, recorded_online=printer.online,
                       last_seen=last_seen)
    return build_view(printer_id=printer.id, name=printer.name, linked=linked, online=online,
                      last_seen=last_seen, status=status)


def relay_consent(view: dict[str, Any]) -> dict[str, bool]:
    """What the owner allowed at the printer, from its last status: relay, key minting and control
    (pause, resume, cancel), off when unsaid."""
    relay = (view.get("status") or {}).get("relay") or {}
    enabled = relay.get("enabled") is True
    return {"enabled": enabled, "mint_api_keys": enabled and relay.get("mint_api_keys") is True,
            "allow_control": enabled and relay.get("allow_control") is True}


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
