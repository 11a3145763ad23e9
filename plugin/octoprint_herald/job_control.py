"""Pause, resume and cancel the current print at Herald's request (control op ``job``, docs/relay.md).

Herald asks over the tunnel: ``job {"action": "pause" | "resume" | "cancel"}`` -> ``{"action", "state"}``
(the state OctoPrint reported before acting), or ``{"error", "message"}`` when refused. It is allowed
only while the owner said yes here, at the printer: ``relay.enabled`` and ``relay.allow_control``
(both off by default). There is no "start a print": Herald can stop or hold what the owner started,
never begin something at a printer nobody may be watching.
"""

from __future__ import annotations

from .mapping import state_id
from .relay_consent import relay_settings

ACTIONS = ("pause", "resume", "cancel")

# What OctoPrint's state must be for each action (OctoPrint's own checks in PrinterInterface are
# silent: pause_print() on an idle printer just does nothing, so Herald would be told "done").
_ALLOWED = {
    "pause": lambda p: p.is_printing() and not p.is_paused(),
    "resume": lambda p: p.is_paused(),
    "cancel": lambda p: p.is_printing() or p.is_paused() or p.is_pausing(),
}
_DO = {"pause": "pause_print", "resume": "resume_print", "cancel": "cancel_print"}


def handle_job(plugin, args: dict) -> dict:
    """The ``job`` control op: the answer to send back, never an exception."""
    action = (args or {}).get("action")
    if action not in ACTIONS:
        return {"error": "bad_action", "message": f"The action must be one of {', '.join(ACTIONS)}."}
    relay = relay_settings(plugin._settings.get(["relay"]))
    if not (relay["enabled"] and relay["allow_control"]):
        return {"error": "control_off",
                "message": "Control from Herald is off in this printer's Herald plugin settings."}
    printer = plugin._printer
    state = state_id(printer.get_state_id())  # the status contract's words, as in the status push
    try:
        allowed = _ALLOWED[action](printer)
    except Exception:  # a printer interface that cannot say is not one to act on
        plugin._logger.exception("Herald: could not read the printer's state for %s", action)
        allowed = False
    if not allowed:
        return {"error": "wrong_state",
                "message": f"The printer cannot {action} now: it is {printer.get_state_string() or state}."}
    try:
        getattr(printer, _DO[action])(tags={"source:plugin", "plugin:herald"})
    except Exception:
        plugin._logger.exception("Herald: %s failed", action)
        return {"error": "failed", "message": f"OctoPrint could not {action} the print."}
    plugin._logger.info("Herald: %s the print at Herald's request (was %s)", action, state)
    return {"action": action, "state": state}


def control_handlers(plugin) -> dict:
    """The tunnel's handler for ``job``, merged with the application keys' ones in __init__.py."""
    return {"job": lambda args: handle_job(plugin, args)}
