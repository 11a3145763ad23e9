"""Publish/subscribe for live printer updates (the dashboard's event stream), per process.

The printers area calls every ``herald.hooks.status_listeners`` entry as
``listener(printer_id, printer_view)`` after accepting a status; ``LiveHub.publish``
is one of them. Each open dashboard is a ``Subscriber`` watching its owner's
printer ids. Status is "latest wins", so a subscriber keeps at most one pending
view per printer it watches: a browser that reads slowly gets the newest status
when it catches up, and its memory stays bounded by the number of its printers,
never by the number of updates.

Each process (hypercorn worker, or a second ``herald serve`` on the same
database) has its own hub. On PostgreSQL, ``services/live_pg.py`` carries
updates between them: the process that flushes statuses to the database sends
a NOTIFY with the printers' ids, and every other process reads those printers'
views back and publishes them to its hub, so a dashboard on any process sees a
status within about ``status_flush_interval`` seconds. SQLite has one process,
so the hub alone suffices there. Either way, the stream's periodic resync from
the database (see blueprints/dashboard.py) remains the safety net for anything
missed (a dropped update, a listener connection that was down).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class Subscriber:
    """One open stream: pending views per printer id, and an event that wakes the stream."""

    def __init__(self, printer_ids: Iterable[str], max_pending: int) -> None:
        self.printer_ids: set[str] = set(printer_ids)
        self.max_pending = max_pending
        self.pending: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self.closed = False
        self.resync_requested = False
        self._wake = asyncio.Event()

    def offer(self, printer_id: str, view: dict[str, Any]) -> None:
        if self.closed or printer_id not in self.printer_ids:
            return
        if printer_id not in self.pending and len(self.pending) >= self.max_pending:
            self.dropped += 1  # the periodic resync repairs what was dropped
            return
        self.pending[printer_id] = view
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def request_resync(self) -> None:
        """Ask the stream to re-read its printers from the database now, not at its next heartbeat."""
        self.resync_requested = True
        self._wake.set()

    def take_resync(self) -> bool:
        requested, self.resync_requested = self.resync_requested, False
        return requested

    async def wait(self, timeout: float) -> dict[str, dict[str, Any]]:
        """The views that arrived (latest per printer), waiting up to ``timeout`` s for one
        (or for a close or a resync request)."""
        if not self.pending and not self.closed and not self.resync_requested:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
        self._wake.clear()
        views, self.pending = self.pending, {}
        return views


class LiveHub:
    """Routes published printer views to the subscribers watching that printer."""

    def __init__(self, *, max_pending: int = 200) -> None:
        self.max_pending = max_pending
        self._by_printer: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self.stopping = False

    def publish(self, printer_id: str, view: dict[str, Any]) -> None:
        """A status listener: synchronous, never blocks, never raises into the caller."""
        for subscriber in tuple(self._by_printer.get(printer_id, ())):
            subscriber.offer(printer_id, view)

    __call__ = publish

    def subscribe(self, printer_ids: Iterable[str]) -> Subscriber:
        subscriber = Subscriber(printer_ids, self.max_pending)
        if self.stopping:
            subscriber.close()
            return subscriber
        self._all.add(subscriber)
        for printer_id in subscriber.printer_ids:
            self._by_printer.setdefault(printer_id, set()).add(subscriber)
        return subscriber

    def watch(self, subscriber: Subscriber, printer_ids: Iterable[str]) -> None:
        """Change the printers a subscriber follows (a printer was added or removed)."""
        new = set(printer_ids)
        for printer_id in subscriber.printer_ids - new:
            self._forget(subscriber, printer_id)
            subscriber.pending.pop(printer_id, None)
        for printer_id in new - subscriber.printer_ids:
            self._by_printer.setdefault(printer_id, set()).add(subscriber)
        subscriber.printer_ids = new

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.close()
        self._all.discard(subscriber)
        for printer_id in subscriber.printer_ids:
            self._forget(subscriber, printer_id)

    def watched(self, printer_ids: Iterable[str]) -> list[str]:
        """Those of ``printer_ids`` that at least one open stream watches."""
        return [printer_id for printer_id in printer_ids if printer_id in self._by_printer]

    def resync_all(self) -> None:
        """Every open stream re-reads its printers (updates may have been missed meanwhile)."""
        for subscriber in tuple(self._all):
            subscriber.request_resync()

    def close_all(self) -> None:
        """End every stream (the server is stopping), so shutdown need not wait for browsers."""
        self.stopping = True
        for subscriber in tuple(self._all):
            subscriber.close()

    @property
    def subscriber_count(self) -> int:
        return len(self._all)

    def _forget(self, subscriber: Subscriber, printer_id: str) -> None:
        watchers = self._by_printer.get(printer_id)
        if watchers is not None:
            watchers.discard(subscriber)
            if not watchers:
                del self._by_printer[printer_id]
