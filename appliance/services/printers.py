"""Printers: keys, the in-memory status store, views for readers, and the owner's actions.

Speed matters here: every plugin checks in at least once a minute, so a status
call touches no database. Two in-memory structures per process make that so:

- the key cache maps a printer key's SHA-256 to the printer it opens. A key
  stops working in this process at once when changed here, and in every other
  process within ``REVALIDATE_EVERY`` seconds: each process looks for printers
  whose ``changed_at`` moved since its last look and forgets them.
- the status store keeps the latest status per printer; dirty entries are
  written in one transaction every ``status_flush_interval`` seconds (and at
  shutdown), which also spares a Raspberry Pi's SD card.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_json
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from appliance.db import query_dicts, shielded
from appliance.errors import APIError
from appliance.models import Printer, User
from appliance.secrets import PRINTER_KEY_PREFIX, new_token, token_hash

log = logging.getLogger(__name__)

# Every process forgets cached printers changed elsewhere at least this often,
# so a rotated or revoked key stops working everywhere within 5 seconds.
REVALIDATE_EVERY = 1.0
_REVALIDATE_OVERLAP = timedelta(seconds=3)
# Unknown keys are remembered briefly, so a flood of bad keys costs no database reads.
_UNKNOWN_KEY_TTL = 2.0
_UNKNOWN_KEY_MAX = 10_000
# One chart point per printer per this many seconds, kept for SAMPLE_WINDOW.
SAMPLE_EVERY = timedelta(seconds=60)
SAMPLE_WINDOW = timedelta(hours=12)
MAX_PRINTER_NAME = 100

_BEARER_ERROR = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


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
    """Per-process printer state; one per app (``printer_state(herald)``)."""

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
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def forget(self, printer_id: str) -> None:
        """Drop a printer from the key cache; its next call reloads it from the database."""
        key = self.key_of.pop(printer_id, None)
        if key is not None:
            self.by_key.pop(key, None)


def printer_state(herald) -> PrinterState:
    """The app's printer state, created on first use."""
    state = herald.deps.get("printer_state")
    if state is None:
        state = PrinterState(started_at=herald.clock.now())
        herald.deps["printer_state"] = state
    return state


def iso_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- authenticating the plugin ---------------------------------------------------------


async def printer_for_key(herald, token: str) -> CachedPrinter:
    """The printer a ``hpk_`` key opens, or a 401."""
    if not token.startswith(PRINTER_KEY_PREFIX):
        raise APIError(401, "invalid_token", "This endpoint takes a printer key (hpk_...).",
                       headers=_BEARER_ERROR)
    state = printer_state(herald)
    digest = token_hash(token)
    cached = state.by_key.get(digest)
    if cached is not None:
        return cached
    now = herald.clock.monotonic()
    expiry = state.unknown_keys.get(digest)
    if expiry is None or expiry <= now:
        rows = await Printer.filter(key_hash=digest).values("id", "owner_id", "name", "online")
        if rows:
            row = rows[0]
            cached = CachedPrinter(id=row["id"], owner_id=row["owner_id"], name=row["name"],
                                   online=row["online"])
            state.forget(cached.id)
            state.by_key[digest] = cached
            state.key_of[cached.id] = digest
            state.unknown_keys.pop(digest, None)
            return cached
        if len(state.unknown_keys) >= _UNKNOWN_KEY_MAX:
            state.unknown_keys.clear()
        state.unknown_keys[digest] = now + _UNKNOWN_KEY_TTL
    raise APIError(401, "invalid_token", "The printer key is unknown or was revoked; link the printer again.",
                   headers=_BEARER_ERROR)


PRELOAD_MAX = 50_000


async def preload_keys(herald) -> int:
    """Fill the key cache at start, so the first check-in of each printer costs no query."""
    state = printer_state(herald)
    rows = await (Printer.filter(key_hash__not_isnull=True).order_by("-last_seen_at").limit(PRELOAD_MAX)
                  .values("id", "owner_id", "name", "online", "key_hash"))
    for row in rows:
        if row["id"] not in state.key_of:
            state.by_key[row["key_hash"]] = CachedPrinter(id=row["id"], owner_id=row["owner_id"],
                                                          name=row["name"], online=row["online"])
            state.key_of[row["id"]] = row["key_hash"]
    return len(rows)


async def revalidate_cache(herald) -> int:
    """Forget cached printers whose key, name or online flag changed in any process."""
    state = printer_state(herald)
    now = herald.clock.now()
    since = (state.last_revalidated or state.started_at) - _REVALIDATE_OVERLAP
    changed = await Printer.filter(changed_at__gte=since).values_list("id", flat=True)
    for printer_id in changed:
        state.forget(printer_id)
    state.last_revalidated = now
    return len(changed)


# --- the status store ------------------------------------------------------------------


async def accept_status(herald, printer: CachedPrinter, status: dict[str, Any]) -> dict[str, Any]:
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
    for listener in herald.status_listeners:
        try:
            listener(printer.id, view)
        except Exception:
            log.exception("status listener %r failed", listener)
    return view


async def _returning_printers(printer_ids: list[str]) -> list[dict[str, Any]]:
    """Of the printers that just checked in, those recorded offline (with when last seen)."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(printer_ids), 500):
        rows += await Printer.filter(id__in=printer_ids[start:start + 500], online=False,
                                     key_hash__not_isnull=True).values("id", "last_seen_at")
    return rows


async def _record_online(herald, row: dict[str, Any]) -> None:
    """Set a printer online; a return from offline (not a first check-in) is an event.

    One transaction per printer, apart from the status flush, so that an event
    listener that fails cannot hold back the statuses.
    """
    from appliance.services.events import record_event

    async with in_transaction() as connection:
        changed = await Printer.filter(id=row["id"], online=False).using_db(connection).update(online=True)
        if changed and row["last_seen_at"] is not None:
            await record_event(herald, row["id"], event_type="printer.online", occurred_at=herald.clock.now(),
                               payload={"last_seen": iso_utc(row["last_seen_at"])}, connection=connection)


def _json(value: Any) -> str | None:
    # pydantic-core's encoder: several times faster than json.dumps, same JSON.
    return None if value is None else to_json(value).decode()


def _dialect() -> str:
    return Tortoise.get_connection("default").capabilities.dialect


async def flush_status(herald) -> int:
    """Write every dirty status in one transaction; returns how many were written."""
    state = printer_state(herald)
    async with state.flush_lock:
        if not state.dirty:
            return 0
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
                samples.append([printer_id, seen, _json(live.status.get("temperatures")), job.get("progress")])
        if _dialect() == "postgres":
            update = ("UPDATE printers SET status=$1::jsonb, last_seen_at=$2, status_updated_at=$3, "
                      "purge_warned_at=NULL WHERE id=$4")
            insert = ("INSERT INTO status_samples (printer_id, taken_at, temperatures, progress) "
                      "SELECT $1::varchar, $2, $3::jsonb, $4 WHERE EXISTS (SELECT 1 FROM printers WHERE id=$1::varchar)")
        else:
            update = ("UPDATE printers SET status=?, last_seen_at=?, status_updated_at=?, "
                      "purge_warned_at=NULL WHERE id=?")
            insert = ("INSERT INTO status_samples (printer_id, taken_at, temperatures, progress) "
                      "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM printers WHERE id=?1)")
        # Kept in coming_online until recorded, so views say "online" throughout.
        coming_online = list(state.coming_online)
        try:
            # Read before the status is written: whether a printer had been seen
            # decides whether its check-in is a return from offline.
            returning = await _returning_printers(coming_online) if coming_online else []
            async with in_transaction() as connection:
                await connection.execute_many(update, rows)
                if samples:
                    await connection.execute_many(insert, samples)
        except Exception:
            state.dirty.update(ids)  # try again at the next flush
            raise
        for row in returning:
            try:
                await _record_online(herald, row)
            except Exception:
                # Offline detection repairs it later (maintenance._repair_missed_online).
                log.exception("recording that printer %s is online failed", row["id"])
        state.coming_online.difference_update(coming_online)
        # Tell other processes which printers have a new status (services/live_pg.py).
        for hook in herald.deps.get("status_flushed_hooks", ()):
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
        return len(rows)


async def _existing_printers(ids: list[str]) -> set[str]:
    """Which of these printers still exist. Plain SQL: the ORM spent ~5 µs per id
    building the IN (...) list, as much as writing the status."""
    existing: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        sql = f"SELECT id FROM printers WHERE id IN ({', '.join('?' * len(chunk))})"
        existing.update(row["id"] for row in await query_dicts(sql, *chunk))
    return existing


async def _apply_last_jobs(state: PrinterState) -> None:
    from appliance.services.history import apply_last_jobs

    pending = {pid: (job, state.live[pid].seen_at) for pid, job in state.last_jobs.items() if pid in state.live}
    state.last_jobs.clear()
    await apply_last_jobs(pending)


async def status_flusher(herald) -> None:
    """Background task: flush coalesced status every ``status_flush_interval`` seconds."""
    while True:
        await asyncio.sleep(herald.settings.status_flush_interval)
        try:
            await shielded(flush_status(herald))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("writing printer status failed; will retry")


async def cache_revalidator(herald) -> None:
    """Background task: forget printers changed by any process, every REVALIDATE_EVERY seconds."""
    while True:
        await asyncio.sleep(REVALIDATE_EVERY)
        try:
            await revalidate_cache(herald)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("checking for changed printer keys failed; will retry")


# --- views for readers (GET /api/v1/printers, the dashboard, Alexa) -------------------


def build_view(*, printer_id: str, name: str, linked: bool, online: bool,
               last_seen: datetime | None, status: dict[str, Any] | None) -> dict[str, Any]:
    """The contract's ``<printer>`` object."""
    return {"id": printer_id, "name": name, "linked": linked, "online": online,
            "last_seen": iso_utc(last_seen), "status": status}


def printer_view(herald, printer: Printer) -> dict[str, Any]:
    """The contract's ``<printer>`` for a Printer row, with this process's fresher status if any."""
    state = printer_state(herald)
    live = state.live.get(printer.id)
    status, last_seen, online = printer.status, printer.last_seen_at, printer.online
    online = online or printer.id in state.coming_online
    if live is not None and (last_seen is None or live.seen_at >= last_seen):
        status, last_seen = live.status, live.seen_at
    return build_view(printer_id=printer.id, name=printer.name, linked=printer.key_hash is not None,
                      online=online and printer.key_hash is not None, last_seen=last_seen,
                      status=status)


async def printer_views(herald, user: User) -> list[dict[str, Any]]:
    printers = await Printer.filter(owner_id=user.id).order_by("name", "created_at")
    return [printer_view(herald, printer) for printer in printers]


async def owned_printer(user: User, printer_id: str) -> Printer:
    """The user's printer, or 404 (also for another user's printer: its existence is not told)."""
    printer = await Printer.get_or_none(id=printer_id, owner_id=user.id)
    if printer is None:
        raise APIError(404, "not_found", "No such printer.")
    return printer


# --- the owner's actions ---------------------------------------------------------------


def clean_printer_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise APIError(400, "invalid_name", "Give the printer a name.", extra={"field": "name"})
    if len(name) > MAX_PRINTER_NAME:
        raise APIError(400, "invalid_name", f"Printer names can be at most {MAX_PRINTER_NAME} characters.",
                       extra={"field": "name"})
    return name


@dataclass(frozen=True)
class NewKey:
    printer: Printer
    key: str  # shown once, never stored


async def create_printer(herald, user: User, name: str, *, connection=None) -> NewKey:
    """A new linked printer (the manual "Add printer" path); its key is returned once."""
    name = clean_printer_name(name)
    key = new_token(PRINTER_KEY_PREFIX)
    now = herald.clock.now()
    printer = await shielded(Printer.create(
        id=str(uuid.uuid4()), owner_id=user.id, name=name, key_hash=token_hash(key),
        linked_at=now, changed_at=now, using_db=connection,
    ))
    return NewKey(printer=printer, key=key)


async def rename_printer(herald, user: User, printer_id: str, name: str) -> Printer:
    printer = await owned_printer(user, printer_id)
    name = clean_printer_name(name)
    await shielded(Printer.filter(id=printer.id).update(name=name, changed_at=herald.clock.now()))
    printer_state(herald).forget(printer.id)
    printer.name = name
    return printer


async def rotate_key(herald, user: User, printer_id: str) -> NewKey:
    """A new key for the printer (also relinks an unlinked one); the old key stops working."""
    printer = await owned_printer(user, printer_id)
    key = new_token(PRINTER_KEY_PREFIX)
    now = herald.clock.now()
    await shielded(Printer.filter(id=printer.id).update(
        key_hash=token_hash(key), linked_at=now, changed_at=now))
    printer_state(herald).forget(printer.id)
    printer.key_hash = token_hash(key)
    return NewKey(printer=printer, key=key)


async def unlink_printer(herald, printer_id: str) -> None:
    """The plugin's "Unlink": the key stops working, the printer stays in the owner's list."""
    await shielded(Printer.filter(id=printer_id).update(
        key_hash=None, online=False, changed_at=herald.clock.now()))
    printer_state(herald).forget(printer_id)
    printer_state(herald).coming_online.discard(printer_id)


async def remove_printer(herald, user: User, printer_id: str) -> None:
    """Delete the printer with its status, events, jobs and chart."""
    printer = await owned_printer(user, printer_id)
    await delete_printers(herald, [printer.id])


async def delete_printers(herald, printer_ids: list[str]) -> None:
    from appliance.services.events import snapshot_paths_of

    if not printer_ids:
        return
    paths = await snapshot_paths_of(printer_ids)
    await shielded(Printer.filter(id__in=printer_ids).delete())
    state = printer_state(herald)
    for printer_id in printer_ids:
        state.forget(printer_id)
        state.live.pop(printer_id, None)
        state.dirty.discard(printer_id)
    for path in paths:
        _unlink_quietly(herald.settings.data_path / path)


def _unlink_quietly(path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
