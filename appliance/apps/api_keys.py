"""OctoPrint API keys for apps: asked of the plugin over the tunnel, returned once, revoked with the connection.

When the portal asked for ``octoPrintApiKeyAppName``, Herald asks the printer's plugin to mint
an OctoPrint application key (control op ``mint_api_key {"app": name}`` -> ``{"key": ...}``),
hands it to the app once in the completion (``octoPrintApiKey``) and keeps it sealed with the
SecretBox: Herald must send it back to the plugin (``revoke_api_key {"key": ...}``) to delete
it when the connection ends, so a hash would not do. Once the plugin confirms, the sealed key
is erased; while it cannot be reached, the key stays sealed on the revoked connection and
``revoke_pending_api_keys`` retries when the printer's tunnel is back.

Herald reaches the plugin through a ``PluginControl``: the relay's tunnel registry provides
one (appliance/relay), set on the ``PluginControlSeat`` part by create_app. Without it (or with
the printer offline) minting is refused with a clear message.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.apps.models import AppConnection
from appliance.core.db import shielded
from appliance.core.errors import HeraldError, NotAllowed, Unavailable
from appliance.core.herald import Herald

log = logging.getLogger(__name__)

MINT_OP = "mint_api_key"
REVOKE_OP = "revoke_api_key"
CONTROL_TIMEOUT = 15.0  # seconds for the plugin's answer; OctoPrint writes its key file meanwhile


class PluginControl(Protocol):
    """A request-answer channel to a printer's plugin (the relay tunnel's control stream).

    ``call`` sends ``op`` with ``args`` to the plugin of ``printer_id`` and returns its JSON
    answer. It raises ``PluginUnreachable`` (or another HeraldError) when the printer has no
    tunnel or does not answer in time. The plugin answers refusals as ``{"error", "message"}``.
    """

    async def call(self, printer_id: str, op: str, args: dict[str, Any]) -> dict[str, Any]: ...


class PluginUnreachable(Unavailable):
    """The printer's plugin cannot be asked right now (no tunnel, relay off, no answer)."""

    default_code = "plugin_unreachable"


class ApiKeyRefused(NotAllowed):
    """The plugin refused to mint (minting not allowed, no such OctoPrint user...); the message says why."""

    default_code = "api_key_refused"


@dataclass
class PluginControlSeat:
    """Where create_app puts the relay's PluginControl (None until the relay provides one)."""

    control: PluginControl | None = None


def _control(herald: Herald) -> PluginControl:
    seat = herald.part_or_none(PluginControlSeat)
    if seat is None or seat.control is None:
        raise PluginUnreachable("Herald's relay is not running, so it cannot ask the printer for an OctoPrint "
                                "API key.")
    return seat.control


async def _call(herald: Herald, printer_id: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    control = _control(herald)
    try:
        answer = await asyncio.wait_for(control.call(printer_id, op, args), CONTROL_TIMEOUT)
    except HeraldError:
        raise
    except (TimeoutError, OSError, ConnectionError) as exc:
        raise PluginUnreachable("The printer's Herald plugin did not answer; try again when it is online.") from exc
    if not isinstance(answer, dict):
        raise PluginUnreachable("The printer's Herald plugin gave an answer Herald cannot read.")
    return answer


def refusal_message(answer: dict[str, Any]) -> str:
    """The plugin's reason: ``{"error": code, "message": ...}`` or ``{"error": {"code", "message"}}``."""
    error = answer.get("error")
    said = error.get("message") if isinstance(error, dict) else answer.get("message")
    return said if isinstance(said, str) else ""


def error_code(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    code = error.get("code") if isinstance(error, dict) else error
    return code if isinstance(code, str) else ""


def key_name(app_name: str, connection_id: str) -> str:
    """The application key's name in OctoPrint: the app's own name, told apart per connection.

    OctoPrint keeps one key per user and name, so two connections of one app get two keys, and
    revoking one never deletes the other's. The owner sees where it came from.
    """
    return f"{app_name} (Herald {connection_id[:8]})"


async def mint_api_key(herald: Herald, connection: AppConnection) -> str:
    """Ask the plugin for the connection's key and keep it sealed; the key, to be shown once."""
    if not connection.octoprint_api_key_app_name or connection.printer_id is None:
        raise ApiKeyRefused("This App Connection asked for no OctoPrint API key.")
    answer = await _call(herald, connection.printer_id, MINT_OP,
                         {"app": key_name(connection.octoprint_api_key_app_name, connection.id)})
    key = answer.get("key")
    if not isinstance(key, str) or not key:
        message = refusal_message(answer)
        raise ApiKeyRefused(message[:300] or "The printer's Herald plugin made no OctoPrint API key.")
    sealed = herald.secret_box.encrypt(key)
    await shielded(AppConnection.filter(id=connection.id).update(octoprint_api_key_sealed=sealed))
    connection.octoprint_api_key_sealed = sealed
    log.info("OctoPrint API key minted for App Connection %s", connection.id)
    return key


async def revoke_api_key(herald: Herald, connection: AppConnection) -> bool:
    """Ask the plugin to delete the connection's key; True once it is gone (or there was none).

    Never raises: a printer that cannot be asked keeps the sealed key for a later try
    (``revoke_pending_api_keys``); a plugin that says it did not make the key has nothing to delete.
    """
    if not connection.octoprint_api_key_sealed or connection.printer_id is None:
        return True
    try:
        key = herald.secret_box.decrypt(connection.octoprint_api_key_sealed)
        answer = await _call(herald, connection.printer_id, REVOKE_OP, {"key": key})
    except (HeraldError, ValueError) as exc:
        log.warning("OctoPrint API key of App Connection %s not revoked yet: %s", connection.id, exc)
        return False
    if answer.get("error") and error_code(answer) != "not_minted":
        log.warning("OctoPrint API key of App Connection %s not revoked: %s", connection.id, refusal_message(answer))
        return False
    await shielded(AppConnection.filter(id=connection.id).update(octoprint_api_key_sealed=""))
    connection.octoprint_api_key_sealed = ""
    return True


async def revoke_pending_api_keys(herald: Herald, printer_id: str) -> int:
    """Revoke the keys of ended connections the plugin could not be asked about before; how many went."""
    pending = await AppConnection.filter(printer_id=printer_id, octoprint_api_key_sealed__not="") \
        .exclude(revoked_at=None)
    done = 0
    for connection in pending:
        done += await revoke_api_key(herald, connection)
    return done
