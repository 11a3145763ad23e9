"""Plugin-side commands over the tunnel (docs/relay.md): ``mint_api_key``, ``revoke_api_key``, and whether
a printer's relay is on, for the areas that need them (App Connections, the printer page)."""

from __future__ import annotations

from typing import Any

from appliance.apps.api_keys import PluginUnreachable
from appliance.core.errors import NotAllowed, Unavailable
from appliance.core.herald import Herald
from appliance.relay.forward import RelayFailed
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

    Where another process holds the tunnel (several processes on PostgreSQL), the command goes
    to it through its internal listener (peers.RelayPeers.call) and its answer comes back the same."""
    tunnel = herald.part(TunnelRegistry).tunnel_for(printer_id)
    try:
        if tunnel is not None:
            return await tunnel.call(command, args, timeout=timeout)
        peers = herald.part_or_none(RelayPeers)
        address = await peers.holder_of(printer_id) if peers is not None else None
        if peers is None or address is None:
            raise RelayOff("The printer's relay is off, or the printer is offline: its plugin cannot be asked now.")
        try:
            answer = await peers.call(address, printer_id, command, args, timeout)
        except RelayFailed as exc:
            raise RelayOff(f"The Herald process holding the printer's tunnel could not be asked: {exc.message}") \
                from None
        if "error" in answer:
            raise PluginCommandFailed(str(answer["error"]), str(answer.get("message") or answer["error"]))
        result = answer["result"]
        return result if isinstance(result, dict) else {"result": result}
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
