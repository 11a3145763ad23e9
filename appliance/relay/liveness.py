"""What the relay's housekeeping asks the database: which tunnels and connections must end."""

from __future__ import annotations

from appliance.apps.models import AppConnection
from appliance.printers.models import Printer
from appliance.relay.tunnel import Tunnel


async def ended(tunnels: list[Tunnel], connection_ids: list[str]) -> tuple[list[str], list[str]]:
    """(printers whose tunnel's key no longer opens them, App Connections revoked), in two queries."""
    gone_printers: list[str] = []
    if tunnels:
        keys = {row["id"]: row["key_hash"] for row in await Printer.filter(
            id__in=[t.printer_id for t in tunnels]).values("id", "key_hash")}
        gone_printers = [t.printer_id for t in tunnels if keys.get(t.printer_id) != t.key_digest]
    gone_connections: list[str] = []
    if connection_ids:
        gone_connections = [row["id"] for row in await AppConnection.filter(
            id__in=connection_ids, revoked_at__not_isnull=True).values("id")]
    return gone_printers, gone_connections
