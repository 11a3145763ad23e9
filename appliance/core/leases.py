"""Leases: a periodic job runs in one process at a time, once per interval, across processes.

A job's lease row says who holds it until when and when the job last ran.
``claim_due`` takes the lease in one conditional UPDATE, which both SQLite and
PostgreSQL apply atomically to the row: it succeeds only when the job is due
(``last_run_at`` older than the interval) and nobody else holds an unexpired
lease. A process that dies while running a job leaves a lease that expires
after ``hold_for``; then another process takes over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from appliance.core.clock import Clock
from appliance.core.db import shielded
from appliance.core.models import Lease

log = logging.getLogger(__name__)


def new_holder() -> str:
    """A name for this process (host, pid and a random part, so a reused pid differs)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def claim_due(name: str, holder: str, *, every: float, hold_for: float, clock: Clock) -> bool:
    """Take the lease for one run of job ``name`` if it is due and free; True when taken."""
    now = clock.now()
    if not await Lease.filter(name=name).exists():
        try:
            await shielded(Lease.create(name=name, holder="", expires_at=now - timedelta(seconds=1)))
        except IntegrityError:
            pass  # another process created it first
    free = Q(expires_at__lt=now) | Q(holder=holder)
    due = Q(last_run_at__isnull=True) | Q(last_run_at__lte=now - timedelta(seconds=every))
    taken = await shielded(Lease.filter(Q(name=name), free, due).update(
        holder=holder, expires_at=now + timedelta(seconds=hold_for), last_run_at=now))
    return taken == 1


async def release(name: str, holder: str, *, clock: Clock) -> None:
    """Give the lease up after a run (the interval still counts from ``last_run_at``)."""
    await shielded(Lease.filter(name=name, holder=holder).update(expires_at=clock.now()))


async def run_periodically(name: str, job: Callable[[], Awaitable[object]], *, every: float,
                           holder: str, clock: Clock, hold_for: float = 300.0,
                           check_every: float | None = None) -> None:
    """Background task: run ``job`` every ``every`` seconds in whichever process claims it first."""
    check_every = check_every or min(every, 5.0)
    while True:
        try:
            if await claim_due(name, holder, every=every, hold_for=hold_for, clock=clock):
                log.debug("periodic job %s runs in %s", name, holder)
                try:
                    await job()
                finally:
                    await release(name, holder, clock=clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic job %s failed; it runs again in %.0f s", name, every)
        await asyncio.sleep(check_every)
