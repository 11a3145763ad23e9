"""Status ingest: the plugin's latest status, kept in memory and written to the database in batches.

``accept_status`` (PUT /api/v1/printer/status) touches no database; dirty statuses
are written in one transaction every ``status_flush_interval`` seconds (and at
shutdown) by ``flush_status``, which also spares a Raspberry Pi's SD card. A return
from offline is recorded there too (a ``printer.online`` event).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic_core import to_json
from tortoise.transactions import in_transaction

from appliance.core.db import query_dicts, shielded
from appliance.core.herald import Herald
from appliance.core.storage import DiskState, is_disk_full
from appliance.core.times import iso_utc
from appliance.printers import sql
from appliance.printers.event_types import JOB_ACTIVE
from appliance.printers.events import record_event
from appliance.printers.jobs import apply_last_jobs
from appliance.printers.models import Printer
from appliance.printers.state import CachedPrinter, LiveStatus, PrinterState, printer_state
from appliance.printers.views import build_view

log = logging.getLogger(__name__)

# One chart point per printer per this many seconds, kept for SAMPLE_WINDOW.
SAMPLE_EVERY = timedelta(seconds=60)
SAMPLE_WINDOW = timedelta(hours=12)


async def accept_status(herald: Herald, printer: CachedPrinter, status: dict[str, Any]) -> dict[str, Any]:
    """Keep a printer's latest status; returns the printer's view (as GET shows it).

    Touches no database: the status, and a return from offline, are written by
    the next flush.
    """
    state = printer_state(herald)
    now = herald.clock.now()
    live = state.live.get(printer.id)
    last_job = status.get("last_job")
    if last_job and (live is None or live.status.get("last_job") != last_job):
        state.last_jobs[printer.id] = last_job
    if live is None:
        state.live[printer.id] = LiveStatus(status=status, seen_at=now)
    else:
        live.status = status
        live.seen_at = now
    state.dirty.add(printer.id)
    if not printer.online:
        state.coming_online.add(printer.id)
        printer.online = True
    view = build_view(printer_id=printer.id, name=printer.name, linked=True, online=True,
                      last_seen=now, status=status)
    _tell_listeners(herald, printer.id, view)
    return view


def _tell_listeners(herald: Herald, printer_id: str, view: dict[str, Any]) -> None:
    for listener in herald.hooks.status_listeners:
        try:
            listener(printer_id, view)
        except Exception:
            log.exception("status listener %r failed", listener)


async def accept_goodbye(herald: Herald, printer: CachedPrinter, reason: str) -> None:
    """OctoPrint is shutting down cleanly (``POST /api/v1/printer/offline``): the printer is
    offline now, with a ``printer.offline`` event, not after minutes of silence."""
    state = printer_state(herald)
    await shielded(flush_status(herald))  # its last status (and a return from offline) first
    now = herald.clock.now()
    async with in_transaction() as connection:
        rows = await Printer.filter(id=printer.id).using_db(connection).values("last_seen_at")
        changed = await Printer.filter(id=printer.id, online=True).using_db(connection).update(
            online=False, changed_at=now)
        last_seen = rows[0]["last_seen_at"] if rows else None
        if changed:
            await record_event(herald, printer.id, event_type="printer.offline", occurred_at=now,
                               payload={"last_seen": iso_utc(last_seen), "reason": reason}, connection=connection)
    state.coming_online.discard(printer.id)
    printer.online = False  # the cached printer: its next check-in is a return
    log.info("printer %s is offline: %s", printer.id, reason)
    live = state.live.get(printer.id)
    view = build_view(printer_id=printer.id, name=printer.name, linked=True, online=False,
                      last_seen=live.seen_at if live else last_seen, status=live.status if live else None)
    _tell_listeners(herald, printer.id, view)


async def restored_statuses() -> tuple[int, datetime | None]:
    """At start: how many printers have a stored status, and when the newest was written."""
    rows: list[Any] = await Printer.filter(status__isnull=False).values_list("status_updated_at", flat=True)
    moments: list[datetime] = [moment for moment in rows if moment is not None]
    return len(rows), max(moments, default=None)


async def _returning_printers(printer_ids: list[str]) -> list[dict[str, Any]]:
    """Of the printers that just checked in, those recorded offline (with when last seen)."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(printer_ids), 500):
        rows += await Printer.filter(id__in=printer_ids[start:start + 500], online=False,
                                     key_hash__not_isnull=True).values("id", "last_seen_at")
    return rows


async def _record_online(herald: Herald, row: dict[str, Any]) -> None:
    """Set a printer online; a return from offline (not a first check-in) is an event.

    One transaction per printer, apart from the status flush, so that an event
    listener that fails cannot hold back the statuses.
    """
    async with in_transaction() as connection:
        changed = await Printer.filter(id=row["id"], online=False).using_db(connection).update(online=True)
        if changed and row["last_seen_at"] is not None:
            await record_event(herald, row["id"], event_type="printer.online", occurred_at=herald.clock.now(),
                               payload={"last_seen": iso_utc(row["last_seen_at"])}, connection=connection)


def _json(value: Any) -> str | None:
    # pydantic-core's encoder: several times faster than json.dumps, same JSON.
    return None if value is None else to_json(value).decode()


async def flush_status(herald: Herald) -> int:
    """Write every dirty status in one transaction; returns how many were written.

    Two steps. The write (under ``flush_lock``): the dirty statuses and chart points in
    one transaction; once it commits, a SIGKILL can lose nothing accepted before it
    began. The follow-up (under ``follow_up_lock``, in flush order): returns from
    offline as ``printer.online`` events, the ``status_flushed`` hooks (on PostgreSQL a
    NOTIFY), forgetting printers removed meanwhile, last_job into the history. The
    follow-up does not hold the next write back: under load (the soak's 1,000 printers,
    the event loop busy) its queries took 2 to 6 s a flush, and statuses accepted
    meanwhile waited in memory for all of it, so a SIGKILL lost several seconds of
    statuses instead of about one flush interval.
    """
    state = printer_state(herald)
    async with state.flush_lock:
        written = await _write_dirty(herald, state)
    if written is None:
        return 0
    rows, returning, coming_online, ids = written
    async with state.follow_up_lock:
        await _follow_up(herald, state, rows, returning, coming_online, ids)
    return len(rows)


async def _write_dirty(herald: Herald, state: PrinterState) -> tuple[
        list[list[Any]], list[dict[str, Any]], list[str], list[str]] | None:
    """The write step: the dirty statuses (and chart points) in one transaction."""
    if not state.dirty:
        return None
    ids = list(state.dirty)
    state.dirty.clear()
    # Parameters are passed as the drivers take them (aware datetimes: sqlite3's
    # adapter, registered by Tortoise, and asyncpg both convert them the way the
    # models' fields do); going through each field's to_db_value cost ~3 µs a row.
    rows: list[list[Any]] = []
    samples: list[list[Any]] = []
    for printer_id in ids:
        live = state.live.get(printer_id)
        if live is None:
            continue
        seen = live.seen_at
        rows.append([_json(live.status), seen, seen, printer_id])
        if live.sampled_at is None or seen - live.sampled_at >= SAMPLE_EVERY:
            live.sampled_at = seen
            job = live.status.get("job") or {}
            # Progress only while a job runs: between jobs the chart's progress line has a gap
            # instead of falling from one job's 100 % to the next one's 0 %.
            active = live.status.get("state_id") in JOB_ACTIVE
            samples.append([printer_id, seen, _json(live.status.get("temperatures")),
                            job.get("progress") if active else None])
    # Kept in coming_online until recorded (by the follow-up), so views say "online" throughout.
    coming_online = list(state.coming_online)
    try:
        # Read before the status is written: whether a printer had been seen
        # decides whether its check-in is a return from offline.
        returning = await _returning_printers(coming_online) if coming_online else []
        async with in_transaction() as connection:
            await connection.execute_many(sql.FLUSH_STATUS.for_connection(connection), rows)
            if samples:
                await connection.execute_many(sql.INSERT_SAMPLE.for_connection(connection), samples)
    except BaseException:
        # try again at the next flush; a cancelled flush too (a periodic task stopped at shutdown,
        # a request whose client went away): its statuses were taken from ``dirty`` above, and
        # the flush at the stop found nothing left to write
        state.dirty.update(ids)
        raise
    return rows, returning, coming_online, ids


async def _follow_up(herald: Herald, state: PrinterState, rows: list[list[Any]],
                     returning: list[dict[str, Any]], coming_online: list[str], ids: list[str]) -> None:
    """What a written flush leads to. Follow-ups run one at a time, in the order of their
    writes; a later write may read a printer as returning that this follow-up is about to
    set online, and the conditional updates below (``online=False``) record it once."""
    # A first check-in is no event: all of them in one statement. One transaction per
    # printer for them stalled the flush when a fleet checked in at once (the soak's
    # 1,000 printers): new statuses waited in memory behind hundreds of transactions.
    first_time = [row["id"] for row in returning if row["last_seen_at"] is None]
    for start in range(0, len(first_time), 500):
        await Printer.filter(id__in=first_time[start:start + 500], online=False).update(online=True)
    for row in returning:
        if row["last_seen_at"] is None:
            continue
        try:
            await _record_online(herald, row)
        except Exception:
            # Offline detection repairs it later (maintenance._repair_missed_online).
            log.exception("recording that printer %s is online failed", row["id"])
    state.coming_online.difference_update(coming_online)
    # Tell other processes which printers have a new status (printers/live_pg.py).
    for hook in herald.hooks.status_flushed:
        try:
            await hook([row[3] for row in rows])
        except Exception:
            log.exception("status-flushed hook %r failed", hook)
    # Printers removed meanwhile (perhaps by another process) leave the store.
    existing = await _existing_printers(ids)
    for printer_id in ids:
        if printer_id not in existing:
            state.live.pop(printer_id, None)
            state.last_jobs.pop(printer_id, None)
            state.forget(printer_id)
    await _apply_last_jobs(state)


async def _existing_printers(ids: list[str]) -> set[str]:
    """Which of these printers still exist. Plain SQL: the ORM spent ~5 µs per id
    building the IN (...) list, as much as writing the status."""
    existing: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = await query_dicts(sql.existing_printers(len(chunk)), *chunk)
        existing.update(row["id"] for row in rows)
    return existing


async def _apply_last_jobs(state: PrinterState) -> None:
    pending = {pid: (job, state.live[pid].seen_at) for pid, job in state.last_jobs.items() if pid in state.live}
    state.last_jobs.clear()
    await apply_last_jobs(pending)


async def status_flusher(herald: Herald) -> None:
    """Background task: flush coalesced status every ``status_flush_interval`` seconds.

    The interval counts from one flush's start to the next: a flush slowed by load is
    followed by the next one at once, not a whole interval later.
    """
    loop = asyncio.get_running_loop()  # the time asyncio.sleep counts in (a test's clock stands still)
    started = loop.time()
    while True:
        interval = herald.settings.status_flush_interval
        await asyncio.sleep(max(0.0, started + interval - loop.time()))
        started = loop.time()
        disk = herald.part(DiskState)
        try:
            await shielded(flush_status(herald))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_disk_full(exc):
                log.exception("writing printer status failed; will retry")
            elif disk.full(exc, herald.clock.now()):
                log.error("The data disk is full: printer statuses stay in memory (the newest of each) "
                          "and are written when there is room (%s)", exc)
        else:
            if disk.room_again():
                log.info("The data disk has room again: printer statuses are written again")
