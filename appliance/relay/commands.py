"""Plugin-side commands over the tunnel (docs/relay.md): ``mint_api_key``, ``revoke_api_key``, and whether
a printer's relay is on, for the areas that need them (App Connections, the printer page)."""

from __future__ import annotations

from typing import Any

from appliance.apps.api_keys import PluginUnreachable
from appliance.core.errors import NotAllowed, Unavailable
from appliance.core.herald import Herald
from appliance.relay.peers import RelayPeers
from appliance.relay.registry import TunnelRegistry
from appliance.relay.tunnel import PluginCommandFailed


class RelayOff(Unavailable):
    """The printer holds no tunnel: its relay is off, or it is offline."""

    default_code = "relay_off"


async def relay_connected(herald: Herald, printer_id: str) -> bool:
    """Whether the printer's relay is on: its plugin holds a tunnel to this or another Herald process."""
    if herald.part(TunnelRegistry).relay_connected(printer_id):
        return True
    peers = herald.part_or_none(RelayPeers)
    return peers is not None and await peers.holder_of(printer_id) is not None


async def call_plugin(herald: Herald, printer_id: str, command: str, args: dict[str, Any],
                      timeout: float = 30.0) -> dict[str, Any]:
    """Run a plugin-side command and return its result; RelayOff, or NotAllowed with the plugin's reason.

    The tunnel must be held by this process: a command for a tunnel held by another process is
    not handed over in this version (docs/relay.md, "Several processes")."""
    tunnel = herald.part(TunnelRegistry).tunnel_for(printer_id)
    if tunnel is None:
        if await relay_connected(herald, printer_id):
            raise RelayOff("The printer's tunnel is held by another Herald process; try again.")
        raise RelayOff("The printer's relay is off, or the printer is offline: its plugin cannot be asked now.")
    try:
        return await tunnel.call(command, args, timeout=timeout)
    except PluginCommandFailed as exc:
        if exc.code in ("timeout", "tunnel_closing"):
            raise RelayOff(exc.message) from None
        raise NotAllowed(f"The printer's plugin refused: {exc.message}", code="plugin_refused") from None


class TunnelControl:
    """The App Connections' ``PluginControl`` (apps/api_keys.py) over the printer's tunnel.

    A printer without a tunnel in this process is unreachable for now: api_keys keeps a key to
    revoke sealed and tries again when the tunnel comes back (create_app's attached listener).
    """

    def __init__(self, herald: Herald) -> None:
        self.herald = herald

    async def call(self, printer_id: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await call_plugin(self.herald, printer_id, op, args)
        except RelayOff as exc:
            raise PluginUnreachable(exc.message) from None
