"""The data disk running full: how to tell, and what one app remembers about it.

A full disk must not become a 500 with a traceback: the plugin gets a 503 saying so (it
keeps the event and retries), the log says it once per episode, /healthz and the admin's
system page show it, and Herald goes on by itself when there is room again.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from datetime import datetime

_DISK_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk full")


def is_disk_full(error: BaseException | None) -> bool:
    """Whether an error (or one it was raised from) means the data disk is full: SQLite's
    SQLITE_FULL, an OSError ENOSPC, PostgreSQL's disk_full (SQLSTATE 53100)."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if getattr(error, "sqlstate", None) == "53100":
            return True
        if any(text in str(error).lower() for text in _DISK_FULL_TEXTS):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


@dataclass
class DiskState:
    """Whether the last write found the data disk full (one per app, provided by create_app)."""

    full_since: datetime | None = None
    detail: str = ""

    def full(self, error: BaseException, now: datetime) -> bool:
        """Note a disk-full error; True the first time (so the log says it once per episode)."""
        first = self.full_since is None
        if first:
            self.full_since, self.detail = now, str(error)[:200]
        return first

    def room_again(self) -> bool:
        """A write succeeded; True when the disk had been full."""
        was_full = self.full_since is not None
        self.full_since, self.detail = None, ""
        return was_full


DISK_FULL_MESSAGE = ("Herald's data disk is full, so it cannot store this now. Nothing is lost: "
                     "the printer keeps it and sends it again. Free space on Herald's disk; "
                     "Herald goes on by itself when there is room.")


def log_write_failure(logger: logging.Logger, disk: DiskState, error: BaseException, now: datetime,
                      what: str) -> None:
    """A background write failed. A full disk is noted on ``disk`` and logged once per episode,
    plainly, without a traceback (the work stays queued and is tried again); anything else
    is logged with its traceback."""
    if not is_disk_full(error):
        logger.error("%s failed; will retry", what, exc_info=error)
    elif disk.full(error, now):
        logger.error("The data disk is full: %s waits until there is room (%s)", what, error)
