"""What one process keeps in memory about printers: the key cache and the latest statuses.

Speed matters here: every plugin checks in at least once a minute, so a status
call touches no database. Two in-memory structures per process make that so:

- the key cache (``by_key``) maps a printer key's SHA-256 to the printer it opens;
  ``appliance.printers.keys`` fills it and keeps it true across processes.
- the status store (``live``) keeps the latest status per printer; dirty entries
  are written by ``appliance.printers.status.flush_status``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from appliance.core.herald import Herald


@dataclass(slots=True)
class CachedPrinter:
    """What a status call needs to know about the printer a key opens."""

    id: str
    owner_id: int
    name: str
    online: bool


@dataclass(slots=True)
class LiveStatus:
    status: dict[str, Any]
    seen_at: datetime
    sampled_at: datetime | None = None  # when the last chart point was taken


@dataclass
class PrinterState:
    """Per-process printer state; one per app, provided by create_app."""

    started_at: datetime
    by_key: dict[str, CachedPrinter] = field(default_factory=dict)
    key_of: dict[str, str] = field(default_factory=dict)  # printer id -> key hash
    unknown_keys: dict[str, float] = field(default_factory=dict)  # key hash -> expiry (monotonic)
    live: dict[str, LiveStatus] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    # Printers whose status brought a last_job not yet checked against the job history.
    last_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Printers that checked in while recorded offline (or never seen), not yet flushed.
    coming_online: set[str] = field(default_factory=set)
    last_revalidated: datetime | None = None
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # a status flush's write step
    follow_up_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # and its follow-up

    def forget(self, printer_id: str) -> None:
        """Drop a printer from the key cache; its next call reloads it from the database."""
        key = self.key_of.pop(printer_id, None)
        if key is not None:
            self.by_key.pop(key, None)


def printer_state(herald: Herald) -> PrinterState:
    """The app's printer state (create_app provides one per app)."""
    return herald.part(PrinterState)
