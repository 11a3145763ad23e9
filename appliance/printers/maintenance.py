"""Periodic printer jobs: offline detection and purging. Each runs in one process at a time.

Offline: a printer is declared offline after ``offline_after`` seconds of
silence, counted from the later of its last check-in and the start of the
process doing the counting, so a restart never makes printers flap.

Purge: printers silent for ``purge_after_days`` are removed with everything
they own, after a warning from ``purge_warn_days`` (``Printer.purge_warned_at``,
shown on the printer's page, and mailed to the owner when mail is configured).
Events older than ``event_retention_days`` go too, with their snapshots.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from tortoise.transactions import in_transaction

from appliance.accounts.models import User
from appliance.core.db import shielded
from appliance.core.herald import Herald
from appliance.core.mail import mail_configured, send_mail
from appliance.core.times import iso_utc
from appliance.printers.chart import trim_samples
from appliance.printers.events import record_event
from appliance.printers.linking import purge_link_requests
from appliance.printers.manage import delete_printers
from appliance.printers.models import Event, Printer
from appliance.printers.state import printer_state
from appliance.printers.status import flush_status

log = logging.getLogger(__name__)

PURGE_EVERY = 3600.0  # seconds between purge runs


async def detect_offline(herald: Herald) -> list[str]:
    """Record printer.offline for printers silent too long; returns their ids."""
    await shielded(flush_status(herald))  # a stop cancelling this task never cuts the write in half
    now = herald.clock.now()
    state = printer_state(herald)
    threshold = now - timedelta(seconds=herald.settings.offline_after)
    went_offline: list[str] = []
    if state.started_at <= threshold:  # this process has listened long enough to judge
        silent = await Printer.filter(online=True, last_seen_at__lt=threshold).values("id", "last_seen_at")
        for row in silent:
            if await shielded(_mark_offline(herald, row["id"], threshold)):
                went_offline.append(row["id"])
                state.forget(row["id"])
    await _repair_missed_online(herald, threshold)
    return went_offline


async def _mark_offline(herald: Herald, printer_id: str, threshold) -> bool:
    now = herald.clock.now()
    async with in_transaction() as conn:
        rows = await Printer.filter(id=printer_id).using_db(conn).values("last_seen_at")
        changed = await Printer.filter(id=printer_id, online=True, last_seen_at__lt=threshold).using_db(
            conn).update(online=False, changed_at=now)
        if not changed:
            return False
        last_seen = rows[0]["last_seen_at"] if rows else None
        await record_event(herald, printer_id, event_type="printer.offline", occurred_at=now,
                           payload={"last_seen": iso_utc(last_seen),
                                    "silent_for": herald.settings.offline_after},
                           connection=conn)
    log.info("printer %s is offline (last seen %s)", printer_id, iso_utc(last_seen))
    return True


async def _repair_missed_online(herald: Herald, threshold) -> None:
    """A printer that checked in at a process whose cache still thought it online is online again."""
    rows = await Printer.filter(online=False, key_hash__not_isnull=True, last_seen_at__gte=threshold,
                                changed_at__isnull=False).values("id", "last_seen_at", "changed_at")
    for row in rows:
        if row["last_seen_at"] > row["changed_at"]:
            printer_state(herald).forget(row["id"])
            async with in_transaction() as conn:
                changed = await Printer.filter(id=row["id"], online=False).using_db(conn).update(
                    online=True, changed_at=herald.clock.now())
                if changed:
                    await record_event(herald, row["id"], event_type="printer.online",
                                       occurred_at=row["last_seen_at"], payload={}, connection=conn)


@dataclass
class PurgeResult:
    printers_removed: list[str] = field(default_factory=list)
    printers_warned: list[str] = field(default_factory=list)
    events_removed: int = 0
    samples_removed: int = 0
    link_requests_removed: int = 0


async def purge(herald: Herald, *, server_running: bool = False) -> PurgeResult:
    """Warn about and remove long-silent printers; drop old events, samples and link requests.

    ``server_running``: called by ``herald purge`` beside a server that has been
    listening to the printers, so this process's own start does not matter.
    """
    await flush_status(herald)
    settings, now = herald.settings, herald.clock.now()
    result = PurgeResult()
    state = printer_state(herald)
    # Right after a start, printers that are alive have not checked in yet.
    listening = server_running or state.started_at <= now - timedelta(seconds=settings.offline_after)
    if settings.purge_after_days > 0 and listening:
        cutoff = now - timedelta(days=settings.purge_after_days)
        result.printers_removed = await _silent_since(cutoff)
        if result.printers_removed:
            await delete_printers(herald, result.printers_removed)
            log.info("removed %d printer(s) silent for %d days", len(result.printers_removed),
                     settings.purge_after_days)
        if settings.purge_warn_days and settings.purge_warn_days < settings.purge_after_days:
            warn_cutoff = now - timedelta(days=settings.purge_warn_days)
            candidates = set(await _silent_since(warn_cutoff))
            unwarned = await Printer.filter(id__in=list(candidates), purge_warned_at__isnull=True)
            if unwarned:
                await shielded(Printer.filter(id__in=[p.id for p in unwarned]).update(purge_warned_at=now))
                result.printers_warned = [p.id for p in unwarned]
                await _mail_warnings(herald, unwarned)
    retention = now - timedelta(days=settings.event_retention_days)
    old = await Event.filter(received_at__lt=retention).values("id", "snapshot_path")
    for start in range(0, len(old), 500):
        chunk = old[start:start + 500]
        await shielded(Event.filter(id__in=[row["id"] for row in chunk]).delete())
        for row in chunk:
            if row["snapshot_path"]:
                (settings.data_path / row["snapshot_path"]).unlink(missing_ok=True)
    result.events_removed = len(old)
    result.samples_removed = await trim_samples(herald)
    result.link_requests_removed = await purge_link_requests(herald)
    return result


async def _silent_since(cutoff) -> list[str]:
    # tortoise types values_list(flat=True) as tuples; it gives the values themselves.
    seen_long_ago: list[str] = await Printer.filter(  # type: ignore[assignment]
        last_seen_at__lt=cutoff).values_list("id", flat=True)
    never_seen: list[str] = await Printer.filter(  # type: ignore[assignment]
        last_seen_at__isnull=True, created_at__lt=cutoff).values_list("id", flat=True)
    return list(seen_long_ago) + list(never_seen)


async def _mail_warnings(herald: Herald, printers: list[Printer]) -> None:
    if not await mail_configured(herald):
        return  # the printer's page shows the warning
    by_owner: dict[int, list[Printer]] = defaultdict(list)
    for printer in printers:
        by_owner[printer.owner_id].append(printer)
    days = herald.settings.purge_after_days
    base = herald.settings.base_url
    for owner_id, owned in by_owner.items():
        owner = await User.get_or_none(id=owner_id)
        if owner is None:
            continue
        lines = [f"- {p.name}: {base}/printers/{p.id}" for p in owned]
        text = ("These printers have not checked in with Herald for a while:\n\n" + "\n".join(lines)
                + f"\n\nHerald removes a printer {days} days after it was last seen, with its status "
                "and history. Start OctoPrint with the Herald plugin to keep it.\n")
        await send_mail(herald, to=owner.email, subject="Herald: printers will be removed", text=text)


