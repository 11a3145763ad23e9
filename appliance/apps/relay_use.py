"""The relay's audit: when a connection was last used and how many bytes it relayed.

The tunnel's stream-close hook calls ``record_relay_use`` once per stream with the bytes it moved;
the owner sees the totals where App Connections are listed (Account > Connected apps) and, for
their own browser access, on the printer page.
"""

from __future__ import annotations

from tortoise.expressions import F

from appliance.apps.models import AppConnection, OwnerRelayAccess
from appliance.core.db import shielded
from appliance.core.errors import Invalid
from appliance.core.herald import Herald

OWNER_ACCESS_PREFIX = "owner-"  # OwnerRelayAccess ids; App Connection ids are uuid hex


async def record_relay_use(herald: Herald, connection_id: str, bytes_up: int, bytes_down: int) -> bool:
    """Add a finished stream's bytes (up: client to OctoPrint) and mark the connection used now.

    ``connection_id`` is an App Connection's id or an owner access's (``owner-...``). A revoked
    connection still counts what it moved before it was cut. False when no such connection exists
    (it was removed meanwhile): nothing to record, nothing raised into the tunnel.
    """
    if bytes_up < 0 or bytes_down < 0:
        raise Invalid("Relayed byte counts cannot be negative.", field="bytes", code="invalid_bytes")
    model = OwnerRelayAccess if connection_id.startswith(OWNER_ACCESS_PREFIX) else AppConnection
    updated = await shielded(model.filter(id=connection_id).update(
        bytes_up=F("bytes_up") + bytes_up, bytes_down=F("bytes_down") + bytes_down,
        last_used_at=herald.clock.now()))
    return bool(updated)
