"""Pause, resume and cancel a printer's current print from Herald (issue 19's control part).

``control_print`` is the one rule behind the printer page's buttons, ``POST /api/v1/printers/<id>/job``
and Home Assistant's buttons (mqtt/control.py). It needs three yeses: the printer is the user's,
its plugin allows control (``relay.allow_control`` in its last status, consent at the printer) and
the owner turned control on for the printer in Herald (``Printer.allow_control``). The command goes
to the plugin over the relay's tunnel (control op ``job``, docs/relay.md); every command that reached
the point of being sent is recorded in the printer's events as ``printer.command`` with
``{action, source, result}``, refused ones included, so the owner can see who tried what.
Never "start a print".
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.accounts.models import User
from appliance.core.db import shielded
from appliance.core.errors import HeraldError, Invalid, NotAllowed
from appliance.core.herald import Herald
from appliance.printers.events import record_event
from appliance.printers.manage import tell_printer_changed
from appliance.printers.models import Printer
from appliance.printers.views import owned_printer, printer_view, relay_consent
from appliance.relay.commands import RelayOff, call_plugin

log = logging.getLogger(__name__)

ACTIONS = ("pause", "resume", "cancel")
SOURCES = ("web", "api", "mqtt", "alexa")
JOB_OP = "job"


def control_consent(herald: Herald, printer: Printer) -> dict[str, bool]:
    """What allows control of this printer: the plugin's yes (from its last status) and Herald's."""
    plugin = relay_consent(printer_view(herald, printer))["allow_control"]
    return {"plugin": plugin, "herald": printer.allow_control, "allowed": plugin and printer.allow_control}


def control_allowed(herald: Herald, printer: Printer) -> bool:
    return control_consent(herald, printer)["allowed"]


async def set_control(herald: Herald, user: User, printer_id: str, allow: bool) -> Printer:
    """The owner's opt-in in Herald for one printer; Home Assistant's buttons follow (printer_changed)."""
    printer = await owned_printer(user, printer_id)
    printer.allow_control = bool(allow)
    await shielded(Printer.filter(id=printer.id).update(allow_control=printer.allow_control))
    tell_printer_changed(herald, printer.id)
    return printer


async def control_print(herald: Herald, user: User, printer_id: str, action: Any, source: str) -> dict[str, Any]:
    """Carry out ``action`` on the user's printer; ``{"action", "state"}`` (the state before) or a domain error.

    NotFound for someone else's printer, Invalid for an unknown action, NotAllowed without both
    consents or when the plugin refuses (wrong state), Unavailable (RelayOff) with no tunnel."""
    if source not in SOURCES:
        raise ValueError(f"unknown control source {source!r}")
    printer = await owned_printer(user, printer_id)
    if action not in ACTIONS:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}.", field="action", code="invalid_action")
    consent = control_consent(herald, printer)
    if not consent["plugin"]:
        raise NotAllowed("Control is off at the printer: turn on \"Let Herald pause, resume and cancel\" in "
                         "OctoPrint, Settings, Herald, Remote access.", code="control_off_at_printer")
    if not consent["herald"]:
        raise NotAllowed("Control is off for this printer in Herald: turn it on on the printer's page.",
                         code="control_off_in_herald")
    try:
        answer = await call_plugin(herald, printer.id, JOB_OP, {"action": action})
    except RelayOff as exc:
        await _record(herald, printer.id, action, source, "unavailable", exc.message)
        raise
    except NotAllowed as exc:
        await _record(herald, printer.id, action, source, "refused", exc.message)
        raise
    if answer.get("error"):
        error = answer.get("error")
        message = str((error.get("message") if isinstance(error, dict) else answer.get("message")) or error)
        await _record(herald, printer.id, action, source, "refused", message)
        raise NotAllowed(f"The printer refused: {message}", code="printer_refused")
    await _record(herald, printer.id, action, source, "done", None)
    return {"action": action, "state": answer.get("state")}


async def _record(herald: Herald, printer_id: str, action: str, source: str, result: str,
                  message: str | None) -> None:
    payload: dict[str, Any] = {"action": action, "source": source, "result": result}
    if message:
        payload["message"] = message[:300]
    try:
        await shielded(record_event(herald, printer_id, event_type="printer.command",
                                    occurred_at=herald.clock.now(), payload=payload))
    except HeraldError:
        log.warning("printer %s: could not record the %s command", printer_id, action)
