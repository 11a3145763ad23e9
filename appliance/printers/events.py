"""Printer events: stored once per (printer, id), numbered per printer, handed to listeners.

``record_event`` is the one way an event enters Herald, whether the plugin
posted it or Herald recorded it (printer.offline / printer.online). Inside the
transaction that stores it, every ``herald.hooks.event_listeners`` entry is awaited as
``listener(event, printer, connection)``; a listener writes with
``using_db=connection``, so its rows (e.g. webhook deliveries) commit or roll
back together with the event.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from appliance.core.db import shielded
from appliance.core.errors import (
    Invalid,
    TooLarge,
    Unauthenticated,
    Unprocessable,
    UnsupportedMediaType,
)
from appliance.core.herald import Herald
from appliance.core.times import iso_utc
from appliance.printers.event_types import HERALD_EVENT_TYPES
from appliance.printers.jobs import apply_event_to_jobs
from appliance.printers.models import Event, Printer
from appliance.printers.pictures import save_picture

log = logging.getLogger(__name__)

MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024
SNAPSHOT_DIR = "snapshots"


@dataclass(frozen=True)
class RecordedEvent:
    event: Event
    duplicate: bool  # the id was seen before: nothing new was stored or enqueued


async def record_event(
    herald,
    printer_id: str,
    *,
    event_type: str,
    occurred_at: datetime,
    event_id: str | None = None,
    payload: dict[str, Any] | None = None,
    printer_data: dict[str, Any] | None = None,
    snapshot: bytes | None = None,
    connection=None,
) -> RecordedEvent:
    """Store an event idempotently and call the event listeners in the same transaction.

    Pass ``connection`` to join a transaction the caller already holds.
    """
    event_id = event_id or str(uuid.uuid4())
    if connection is not None:
        return await _record(herald, printer_id, event_type, occurred_at, event_id, payload,
                             printer_data, snapshot, connection)
    try:
        async with in_transaction() as conn:
            return await _record(herald, printer_id, event_type, occurred_at, event_id, payload,
                                 printer_data, snapshot, conn)
    except IntegrityError:
        # Two requests with the same id raced (SQLite has no row lock to queue them).
        existing = await Event.get_or_none(printer_id=printer_id, event_id=event_id)
        if existing is None:
            raise
        return RecordedEvent(event=existing, duplicate=True)


async def _record(herald: Herald, printer_id, event_type, occurred_at, event_id, payload, printer_data,
                  snapshot, conn) -> RecordedEvent:
    # The row lock (PostgreSQL) queues concurrent events of one printer, so the
    # duplicate check and the sequence number below are race-free.
    printer = await Printer.filter(id=printer_id).select_for_update().using_db(conn).first()
    if printer is None:
        raise Unauthenticated("The printer no longer exists.", code="invalid_token")
    existing = await Event.filter(printer_id=printer_id, event_id=event_id).using_db(conn).first()
    if existing is not None:
        return RecordedEvent(event=existing, duplicate=True)
    sequence = printer.event_sequence + 1
    await Printer.filter(id=printer_id).using_db(conn).update(event_sequence=sequence)
    printer.event_sequence = sequence
    snapshot_path = _store_snapshot(herald, printer_id, snapshot) if snapshot else None
    try:
        event = await Event.create(
            printer_id=printer_id, event_id=event_id, type=event_type, sequence=sequence,
            occurred_at=occurred_at, received_at=herald.clock.now(), payload=payload,
            printer_data=printer_data, snapshot_path=snapshot_path, using_db=conn,
        )
        await apply_event_to_jobs(event, conn)
        for listener in herald.hooks.event_listeners:
            await listener(event, printer, conn)
    except BaseException:
        if snapshot_path:
            (herald.settings.data_path / snapshot_path).unlink(missing_ok=True)
        raise
    return RecordedEvent(event=event, duplicate=False)


def check_snapshot(data: bytes) -> bytes:
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise TooLarge("The snapshot is larger than 2 MiB.", code="snapshot_too_large")
    if not data.startswith(b"\xff\xd8\xff"):
        raise UnsupportedMediaType("The snapshot must be a JPEG image.", code="snapshot_not_jpeg")
    return data


def _store_snapshot(herald: Herald, printer_id: str, data: bytes) -> str:
    relative = Path(SNAPSHOT_DIR) / printer_id / f"{uuid.uuid4().hex}.jpg"
    target = herald.settings.data_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    tmp.write_bytes(data)
    tmp.replace(target)
    return str(relative)


async def snapshot_paths_of(printer_ids: list[str]) -> list[str]:
    # tortoise types values_list(flat=True) as tuples; it gives the values themselves.
    paths: list[str | None] = await Event.filter(  # type: ignore[assignment]
        printer_id__in=printer_ids, snapshot_path__not_isnull=True
    ).values_list("snapshot_path", flat=True)
    return [p for p in paths if p]


async def post_event(herald: Herald, printer_id: str, body: Any, snapshot: bytes | None) -> RecordedEvent:
    """The plugin's POST /api/v1/printer/events, after parsing."""
    if body.type in HERALD_EVENT_TYPES:
        raise Unprocessable(f"type: {body.type} is recorded by Herald itself", extra={"details": [{"field": "type", "problem": "recorded by Herald"}]})
    recorded = await shielded(record_event(
        herald, printer_id, event_type=body.type, occurred_at=body.occurred_at, event_id=body.id,
        payload=body.payload, printer_data=body.printer_data, snapshot=snapshot,
    ))
    if snapshot and not recorded.duplicate:
        save_picture(herald, printer_id, "webcam", snapshot)  # the card's latest webcam picture
    return recorded


# --- reading: GET /api/v1/printers/<id>/events --------------------------------------------

MAX_PAGE = 200
_CURSOR_PREFIX = "seq:"
# What a reader sees of an event: no row id, no printer data, no snapshot path.
_VIEW_FIELDS = ("event_id", "type", "sequence", "occurred_at", "received_at", "payload", "snapshot_path")


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    next: str | None  # the cursor for the following (older) page, or None at the end


def encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{sequence}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The sequence a ``next`` cursor stands for: 400 naming ``before`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        digits = text.removeprefix(_CURSOR_PREFIX)
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
            raise ValueError(text)
        return int(digits)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("before: not a cursor from this API; pass the 'next' "
                       "value of the previous page unchanged.", extra={"details": [{"field": "before", "problem": "not a cursor"}]}) from None


def event_view(event: Event) -> dict[str, Any]:
    """The read API's ``<event>``: the plugin's id, never a row id or a file path."""
    return {
        "id": event.event_id,
        "type": event.type,
        "occurred_at": iso_utc(event.occurred_at),
        "received_at": iso_utc(event.received_at),
        "payload": event.payload,
        "snapshot": bool(event.snapshot_path),
    }


def event_page_query(printer_id: str, *, limit: int, before: int | None, types: Sequence[str]):
    """The SELECT of one page (and one row more, to tell whether another page follows).

    The (printer_id, sequence) index serves both the filter and the order, so a
    page deep in the history costs what the first one does (keyset, not OFFSET).
    """
    query = Event.filter(printer_id=printer_id)
    if before is not None:
        query = query.filter(sequence__lt=before)
    if types:
        query = query.filter(type__in=list(types))
    return query.order_by("-sequence").limit(limit + 1).only(*_VIEW_FIELDS)


async def event_page(printer_id: str, *, limit: int = 50, before: int | None = None,
                     types: Sequence[str] = ()) -> EventPage:
    """A printer's events, newest (last received) first, keyset-paged on the per-printer sequence."""
    rows = await event_page_query(printer_id, limit=limit, before=before, types=types)
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(events=[event_view(row) for row in rows],
                     next=encode_cursor(rows[-1].sequence) if more else None)
