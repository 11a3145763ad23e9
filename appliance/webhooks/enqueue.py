"""Turning a stored event (or a test) into frozen deliveries.

A delivery's request (URL, headers, body) is rendered when the event is stored,
inside the same transaction, and never rendered again: every retry sends the
same bytes under the same ``webhook-id``. Only values taken from an OAuth
pre-request's response are filled in at send time, as tokens expire.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from appliance.accounts.models import User
from appliance.core.db import shielded
from appliance.core.errors import NotFound, Unprocessable
from appliance.core.herald import Herald
from appliance.printers.event_types import (
    APP_TEST_EVENT_NUMBER,
    EVENT_NUMBER_OF,
    EVENT_TOPICS,
    EVENT_TYPES,
)
from appliance.printers.models import Event, Printer
from appliance.webhooks import templates as tpl
from appliance.webhooks.models import Delivery, WebhookTarget
from appliance.webhooks.redact import seal_request
from appliance.webhooks.targets import new_webhook_id

# Headers Herald sets itself; a target's template may not set them.
_DROPPED_HEADERS = {"host", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature",
                    "herald-sequence", "transfer-encoding"}


def delivered_as(target_events: list[str] | None, event_type: str) -> str | None:
    """The event type a target receives an event as, or None when it does not receive it.

    OctoPrint fires PrintFailed for a cancel too, so OctoPrint-Webhooks' receivers see a
    cancelled print as "Print Failed" (reason "cancelled"). A target subscribed to
    print.cancelled gets Herald's own "Print Cancelled"; one subscribed to print.failed
    but not print.cancelled gets the cancel as OctoPrint-Webhooks sends it.
    """
    events = target_events or []
    if event_type in events:
        return event_type
    if event_type == "print.cancelled" and "print.failed" in events:
        return "print.failed"
    return None


def default_message(event_type: str) -> str:
    return EVENT_TOPICS.get(event_type, (event_type, event_type))[1]


def event_params(herald: Herald, target: WebhookTarget, *, event_type: str, event_id: str, sequence: int,
                 occurred_at: datetime, payload: dict | None, printer_data: dict | None,
                 printer: dict[str, Any], milestone: int | None, topic_type: str | None = None,
                 is_test: bool = False) -> dict[str, Any]:
    """The @params of one event for one target (OctoPrint-Webhooks' names, plus Herald's).

    ``topic_type`` is the type the target receives the event as (see delivered_as): its
    topic and message are used, and a cancel sent as print.failed carries OctoPrint's
    ``reason: "cancelled"`` in @extra.
    """
    shown = topic_type or event_type
    topic = EVENT_TOPICS.get(shown, (shown, shown))[0]
    payload = dict(payload or {})
    if shown == "print.failed" and event_type == "print.cancelled":
        payload.setdefault("reason", "cancelled")
    data = printer_data or {}
    params: dict[str, Any] = {
        "deviceIdentifier": target.device_identifier,
        "apiSecret": herald.secret_box.decrypt(target.api_secret) if target.api_secret else "",
        "topic": topic,
        "message": "",
        "extra": payload,
        "state": data.get("state", {}),
        "job": data.get("job", {}),
        "progress": data.get("progress", {}),
        "currentZ": data.get("currentZ"),
        "offsets": data.get("offsets", {}),
        "meta": data.get("meta", {}),
        "currentTime": int(occurred_at.timestamp()),
        # As OctoPrint-Webhooks: the milestone last reached (0 before the first one).
        "percentCompleteMilestone": milestone if milestone is not None else 0,
        "printer": printer,
        "sequence": sequence,
        "event": event_type,
        "eventId": event_id,
        "occurredAt": occurred_at.isoformat(),
        # OctoEverywhere's number for the event (App Connections' notifications); 16 for a test
        "eventNumber": APP_TEST_EVENT_NUMBER if is_test else EVENT_NUMBER_OF.get(event_type, 0),
    }
    # The message is itself a template (OctoPrint-Webhooks' progress text uses
    # @percentCompleteMilestone); its @params are filled once, before it is used.
    text = (target.messages or {}).get(shown) or default_message(shown)
    rendered = tpl.render_string(text, params)
    params["message"] = rendered if isinstance(rendered, str) else tpl.as_text(rendered)
    return params


def build_request(target: WebhookTarget, params: dict[str, Any], *, has_snapshot: bool) -> dict[str, Any]:
    """The frozen request of a delivery: url, method, headers, body_kind, body, snapshot_key."""
    defer: frozenset[str] | None = frozenset() if target.oauth_enabled else None
    headers_template = json.loads(target.headers or "{}")
    headers: dict[str, Any] = {}
    for key, value in headers_template.items():
        if str(key).lower() in _DROPPED_HEADERS:
            continue
        rendered = tpl.render(value, params, defer=defer)
        headers[str(key)] = rendered if isinstance(rendered, dict) else tpl.header_text(rendered)
    body_template = json.loads(target.body or "{}")
    # As OctoPrint-Webhooks: the first top-level "@snapshot" value names the picture's field
    # and makes the request multipart/form-data, picture or not (without one the field is
    # left out). A further "@snapshot" renders empty.
    snapshot_key = ""
    uses_snapshot = False
    for key, value in list(body_template.items()):
        if value == tpl.SNAPSHOT:
            del body_template[key]
            uses_snapshot = True
            if has_snapshot:
                snapshot_key = key
            break
    body = tpl.render(body_template, params, defer=defer)
    if target.method == "GET":
        kind = "query"
    elif uses_snapshot:
        kind = "multipart"
    else:
        kind = target.content_type
    if kind != "json":
        body = [[key, value] for key, value in body.items()]  # in order (see delivery.encode)
    if kind == "json":
        _ensure_content_type(headers, "application/json")
    elif kind == "form":
        _ensure_content_type(headers, "application/x-www-form-urlencoded")
    elif kind in ("multipart", "query"):
        for key in [k for k in headers if k.lower() == "content-type"]:
            del headers[key]
    return {"url": tpl.render_url(target.url, params), "method": target.method, "headers": headers,
            "body_kind": kind, "body": body, "snapshot_key": snapshot_key}


def _ensure_content_type(headers: dict[str, Any], wanted: str) -> None:
    # As OctoPrint-Webhooks: a Content-Type that does not name the encoding is replaced.
    for key in list(headers):
        if key.lower() == "content-type":
            value = headers[key]
            if isinstance(value, str) and wanted in value:
                return
            del headers[key]
    headers["Content-Type"] = wanted


def progress_milestone(step: int, previous: float, current: float) -> int | None:
    """The highest multiple of step crossed going from previous to current percent, or None."""
    if current >= 100 or current <= previous:
        return None
    now, before = math.floor(current / step), math.floor(previous / step)
    if now > before and now * step > 0:
        return now * step
    return None


def last_milestone(step: int, progress: float) -> int:
    """The milestone last reached at progress percent (0 before the first), as OctoPrint-Webhooks' @percentCompleteMilestone."""
    if step <= 0 or progress <= 0:
        return 0
    reached = math.floor(min(progress, 99.999) / step) * step
    return reached if 0 < reached < 100 else 0


def _uses_milestone(target: WebhookTarget) -> bool:
    texts = (target.body or "", target.headers or "", target.url or "", *(target.messages or {}).values())
    return any("percentCompleteMilestone" in text for text in texts)


async def _previous_progress(event: Event, connection) -> float:
    earlier = await (Event.filter(printer_id=event.printer_id, type__in=("print.progress", "print.started"),
                                  sequence__lt=event.sequence)
                     .using_db(connection).order_by("-sequence").first())
    if earlier is None or earlier.type != "print.progress":
        return 0.0
    return _progress_of(earlier.payload)


def _progress_of(payload: dict | None) -> float:
    try:
        return float((payload or {}).get("progress") or 0)
    except (TypeError, ValueError):
        return 0.0


async def enqueue_event(herald: Herald, event: Event, printer: Printer, connection,
                        notify: Callable[[], None] | None = None) -> int:
    """Create the deliveries of one stored event (an event listener; runs in its transaction)."""
    # Match on three columns first: loading every target of the owner as a model costs
    # more than the rest of the event.
    candidates = await (WebhookTarget.filter(owner_id=printer.owner_id, enabled=True).using_db(connection)
                        .values_list("id", "events", "printer_ids"))
    wanted = [tid for tid, events, printer_ids in candidates
              if delivered_as(events, event.type) and (not printer_ids or printer.id in printer_ids)]
    if not wanted:
        return 0
    matching = await WebhookTarget.filter(id__in=wanted).using_db(connection).order_by("id")
    previous = current = 0.0
    if event.type == "print.progress":
        current = _progress_of(event.payload)
        previous = await _previous_progress(event, connection)
    elif event.type.startswith("print.") and any(_uses_milestone(t) for t in matching):
        previous = await _previous_progress(event, connection)
    now = herald.clock.now()
    rows = []
    for target in matching:
        if event.type == "print.progress":
            milestone = progress_milestone(target.progress_step, previous, current)
            if milestone is None:
                continue
        elif "print.progress" in (target.events or []):
            milestone = last_milestone(target.progress_step, previous)
        else:
            milestone = 0  # as OctoPrint-Webhooks: only a hook sending progress counts milestones
        rows.append(_delivery_row(herald, target, event_type=event.type, event_id=event.event_id,
                                  sequence=event.sequence, occurred_at=event.occurred_at,
                                  payload=event.payload, printer_data=event.printer_data,
                                  printer={"id": printer.id, "name": printer.name}, milestone=milestone,
                                  snapshot_path=event.snapshot_path, now=now, event_pk=event.id,
                                  topic_type=delivered_as(target.events, event.type)))
    if rows:
        await Delivery.bulk_create(rows, using_db=connection)
        if notify is not None:
            notify()
    return len(rows)


def _delivery_row(herald: Herald, target: WebhookTarget, *, event_type: str, event_id: str, sequence: int,
                  occurred_at: datetime, payload, printer_data, printer: dict[str, Any],
                  milestone: int | None, snapshot_path: str | None, now: datetime,
                  event_pk: int | None, is_test: bool = False, topic_type: str | None = None) -> Delivery:
    params = event_params(herald, target, event_type=event_type, event_id=event_id, sequence=sequence,
                          occurred_at=occurred_at, payload=payload, printer_data=printer_data,
                          printer=printer, milestone=milestone, topic_type=topic_type, is_test=is_test)
    request = build_request(target, params, has_snapshot=bool(snapshot_path))
    shown, sealed = seal_request(herald.secret_box, request, [params["apiSecret"]])
    return Delivery(
        target_id=target.id, event_id=event_pk, printer_id=printer.get("id"), event_type=event_type,
        sequence=sequence, occurred_at=occurred_at, accepted_at=now, webhook_id=new_webhook_id(),
        snapshot_path=snapshot_path if request["snapshot_key"] else None, is_test=is_test,
        status="pending", next_attempt_at=now, sealed=sealed, **shown,
    )


def sample_event(event_type: str, printer: Printer | None) -> dict[str, Any]:
    """A plausible event of a type, for test sends (from the printer's last status when known)."""
    status = (printer.status if printer else None) or {}
    job = status.get("job") or {}
    file = job.get("file") or "test-print.gcode"
    progress = 50 if event_type == "print.progress" else (job.get("progress") or 0)
    payload: dict[str, Any] = {"name": file, "path": file, "origin": "local", "size": 242038}
    if event_type == "print.progress":
        payload["progress"] = progress
    if event_type == "printer.error":
        payload = {"error": "Test error from Herald"}
    printer_data = {
        "state": {"text": status.get("state") or "Printing", "flags": {"printing": True, "operational": True}},
        "job": {"file": {"name": file, "path": file, "display": file, "origin": "local", "size": 242038},
                "estimatedPrintTime": 3600, "user": "herald"},
        "progress": {"completion": progress, "printTime": 1800, "printTimeLeft": 1800, "filepos": 121019},
        "currentZ": job.get("z") or 12.4,
        "offsets": {},
    }
    return {"payload": payload, "printer_data": printer_data, "milestone": 50 if event_type == "print.progress" else None}


async def enqueue_test(herald: Herald, owner: User, target: WebhookTarget, event_type: str,
                       printer_id: str | None = None, notify: Callable[[], None] | None = None) -> Delivery:
    if event_type not in EVENT_TOPICS:
        raise Unprocessable(f"type must be one of {', '.join(EVENT_TYPES)}", code="invalid_event_type")
    printer = None
    if printer_id:
        printer = await Printer.get_or_none(id=printer_id, owner_id=owner.id)
        if printer is None:
            raise NotFound("No such printer.")
    else:
        printer = await Printer.filter(owner_id=owner.id).order_by("created_at").first()
    sample = sample_event(event_type, printer)
    now = herald.clock.now()
    row = _delivery_row(herald, target, event_type=event_type, event_id=f"test-{uuid.uuid4().hex[:12]}",
                        sequence=0, occurred_at=now, payload=sample["payload"],
                        printer_data=sample["printer_data"],
                        printer={"id": printer.id if printer else "test", "name": printer.name if printer else "Test printer"},
                        milestone=sample["milestone"], snapshot_path=None, now=now, event_pk=None, is_test=True,
                        topic_type=delivered_as(target.events, event_type) or event_type)
    await shielded(row.save())
    if notify is not None:
        notify()
    return row


async def resend(herald: Herald, delivery: Delivery, notify: Callable[[], None] | None = None) -> Delivery:
    """Queue the same request again (same webhook-id and body) as a new delivery row."""
    now = herald.clock.now()
    copy = Delivery(
        target_id=delivery.target_id, event_id=delivery.event_id, printer_id=delivery.printer_id,
        event_type=delivery.event_type, sequence=delivery.sequence, occurred_at=delivery.occurred_at,
        accepted_at=now, webhook_id=delivery.webhook_id, url=delivery.url, method=delivery.method,
        headers=delivery.headers, body_kind=delivery.body_kind, body=delivery.body,
        snapshot_key=delivery.snapshot_key, snapshot_path=delivery.snapshot_path, sealed=delivery.sealed,
        is_test=delivery.is_test, resend_of=delivery.id, status="pending", next_attempt_at=now,
    )
    await shielded(copy.save())
    if notify is not None:
        notify()
    return copy


