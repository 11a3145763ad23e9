"""Pause, resume and cancel from Home Assistant's buttons (issue 19's control part).

The buttons (discovery.BUTTONS: ``Pause Print``, ``Resume Print``, ``Cancel Print``) are published
for a printer only while both opt-ins hold (relay/control.py: the plugin's ``relay.allow_control``
at the printer and the owner's switch on Herald's printer page); they go when either is turned off.
Their ``command_topic`` is ``<base>/<printer id>/command`` with the payload ``pause``, ``resume`` or
``cancel``; the MQTT task hands every message there to ``run_command``, which acts for the
printer's owner through ``control_print`` with source ``mqtt`` (so the command is checked and
recorded in the printer's events exactly like one from the printer page). Never "start a print".

Anyone who may publish on the broker can press a button: that is Home Assistant's model too
(the broker's own users and ACLs guard it, docs/home-assistant.md), and why both opt-ins are off
by default.
"""

from __future__ import annotations

import logging

from appliance.accounts.models import User
from appliance.core.errors import HeraldError
from appliance.core.herald import Herald
from appliance.printers.models import Printer
from appliance.relay.control import ACTIONS, control_print

log = logging.getLogger(__name__)

COMMANDS = ACTIONS


def available(herald: Herald) -> bool:
    """Whether the MQTT task listens for button presses: always, now that the relay's tunnel exists.

    Which printers may be controlled is decided per press (``run_command``) and per printer in
    discovery (``PublishedPrinter.control``); listening costs one subscription."""
    return True


async def run_command(herald: Herald, printer_id: str, command: str) -> bool:
    """A button press from Home Assistant; returns whether the command was carried out."""
    if command not in COMMANDS:
        log.warning("MQTT command %r for printer %s ignored: not one of %s", command[:40], printer_id, COMMANDS)
        return False
    printer = await Printer.get_or_none(id=printer_id)
    owner = await User.get_or_none(id=printer.owner_id) if printer is not None else None
    if owner is None:
        log.warning("MQTT command %s for unknown printer %s ignored", command, printer_id[:40])
        return False
    try:
        await control_print(herald, owner, printer_id, command, "mqtt")
    except HeraldError as exc:
        log.warning("MQTT command %s for printer %s refused: %s", command, printer_id, exc.message)
        return False
    return True
