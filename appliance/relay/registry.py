"""Which printers have a live tunnel in this process, and which streams each App Connection has open.

The part ``create_app`` provides. Ending things goes through here: a printer unlinked or
removed closes its tunnel, a revoked App Connection loses its streams, and a housekeeping
task looks at the database twice a second while anything is live, so the same happens
within a second when the change was made by another process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from appliance.apps.relay_limits import RelayLimits
from appliance.relay.framing import CLOSE_REPLACED, CLOSE_UNAUTHORISED
from appliance.relay.pacing import Pace
from appliance.relay.tunnel import Stream, Tunnel

_UNPACED = Pace(0)

log = logging.getLogger(__name__)

# listener(connection_id, bytes_up, bytes_down): awaited when a relayed request or WebSocket of an
# App Connection ends (docs/relay.md, "The audit hook").
StreamClosedListener = Callable[[str, int, int], Awaitable[object]]

HOUSEKEEPING_EVERY = 0.5


class TunnelRegistry:
    def __init__(self) -> None:
        self.tunnels: dict[str, Tunnel] = {}
        self.by_connection: dict[str, set[Stream]] = {}
        self._paces: dict[str, tuple[Pace, Pace]] = {}  # per connection with live streams: (up, down)
        self.stream_closed_listeners: list[StreamClosedListener] = []
        # run with a printer's id once its new tunnel is attached (App Connections revoke the
        # OctoPrint API keys they could not revoke while the printer was away). In a task of its
        # own: a listener may call the plugin, whose answer the tunnel's receive loop, started
        # after attach, has yet to read.
        self.attached_listeners: list[Callable[[str], Awaitable[object]]] = []
        self._listening: set[asyncio.Task] = set()

    # --- tunnels

    async def attach(self, tunnel: Tunnel) -> None:
        """The printer's new tunnel; an older one of the same printer is closed (4409)."""
        old = self.tunnels.get(tunnel.printer_id)
        self.tunnels[tunnel.printer_id] = tunnel
        tunnel.on_stream_gone = self._stream_gone
        if old is not None and old is not tunnel:
            await old.close(CLOSE_REPLACED, "replaced by a newer tunnel from the same printer")
        for listener in list(self.attached_listeners):
            task = asyncio.create_task(self._attached(listener, tunnel.printer_id))
            self._listening.add(task)
            task.add_done_callback(self._listening.discard)

    @staticmethod
    async def _attached(listener: Callable[[str], Awaitable[object]], printer_id: str) -> None:
        try:
            await listener(printer_id)
        except Exception:
            log.exception("a relay attached listener failed")

    def detach(self, tunnel: Tunnel) -> None:
        if self.tunnels.get(tunnel.printer_id) is tunnel:
            del self.tunnels[tunnel.printer_id]
        tunnel.fail_all("tunnel_closing", "the printer's tunnel closed")

    def tunnel_for(self, printer_id: str) -> Tunnel | None:
        tunnel = self.tunnels.get(printer_id)
        return tunnel if tunnel is not None and not tunnel.closed.is_set() else None

    def relay_connected(self, printer_id: str) -> bool:
        """Whether the printer's relay is on: its plugin holds a tunnel (to this process)."""
        return self.tunnel_for(printer_id) is not None

    # --- streams of App Connections

    def track(self, stream: Stream) -> None:
        if stream.connection_id:
            self.by_connection.setdefault(stream.connection_id, set()).add(stream)

    def untrack(self, stream: Stream) -> None:
        if stream.connection_id:
            streams = self.by_connection.get(stream.connection_id)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self.by_connection[stream.connection_id]
                    self._paces.pop(stream.connection_id, None)

    def live_streams(self, connection_id: str) -> int:
        return len(self.by_connection.get(connection_id, ()))

    def paces(self, connection_id: str | None, limits: RelayLimits | None) -> tuple[Pace, Pace]:
        """The connection's bandwidth buckets (up, down), shared by all its streams."""
        if not connection_id or limits is None or limits.bandwidth <= 0:
            return _UNPACED, _UNPACED
        paces = self._paces.get(connection_id)
        if paces is None or paces[0].rate != limits.bandwidth:
            paces = self._paces[connection_id] = (Pace(limits.bandwidth), Pace(limits.bandwidth))
        return paces

    def _stream_gone(self, stream: Stream) -> None:
        pass  # forwarding untracks when it finishes; the tunnel only forgets the id

    async def stream_closed(self, stream: Stream) -> None:
        self.untrack(stream)
        if not stream.connection_id:
            return
        for listener in list(self.stream_closed_listeners):
            try:
                await listener(stream.connection_id, stream.bytes_up, stream.bytes_down)
            except Exception:
                log.exception("a relay stream_closed listener failed")

    # --- ending

    async def cut_connections(self, connection_ids: list[str], reason: str = "revoked") -> int:
        """Reset every live stream of these App Connections; how many were cut."""
        cut = 0
        for connection_id in connection_ids:
            for stream in list(self.by_connection.pop(connection_id, ())):
                await stream.reset("revoked", f"the App Connection was {reason}")
                cut += 1
        return cut

    async def end_connections(self, connection_ids: list[str]) -> None:
        """The connections_ending hook: their live streams end at once."""
        await self.cut_connections(connection_ids)

    async def close_printers(self, printer_ids: list[str], reason: str) -> None:
        for printer_id in printer_ids:
            tunnel = self.tunnels.pop(printer_id, None)
            if tunnel is not None:
                await tunnel.close(CLOSE_UNAUTHORISED, reason)

    async def close_all(self) -> None:
        for task in list(self._listening):
            task.cancel()
        for tunnel in list(self.tunnels.values()):
            await tunnel.close(1001, "Herald is stopping")
        self.tunnels.clear()

    async def housekeeping(self, still_valid: Callable[[list[Tunnel], list[str]], Awaitable[tuple[list[str], list[str]]]],
                           every: float = HOUSEKEEPING_EVERY) -> None:
        """Background task: end tunnels whose key no longer opens their printer and streams of
        connections revoked anywhere. ``still_valid`` answers (printers gone, connections gone)."""
        while True:
            await asyncio.sleep(every)
            if not self.tunnels and not self.by_connection:
                continue
            try:
                gone_printers, gone_connections = await still_valid(list(self.tunnels.values()),
                                                                   list(self.by_connection))
                if gone_printers:
                    await self.close_printers(gone_printers, "the printer key was revoked or the printer unlinked")
                if gone_connections:
                    await self.cut_connections(gone_connections)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay housekeeping failed; will retry")
