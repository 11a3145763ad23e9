"""Webhook targets: validation, presets, and turning a stored event into frozen deliveries.

A delivery's request (URL, headers, body) is rendered when the event is stored,
inside the same transaction, and never rendered again: every retry sends the
same bytes under the same ``webhook-id``. Only values taken from an OAuth
pre-request's response are filled in at send time, as tokens expire.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from appliance.db import shielded
from appliance.errors import APIError
from appliance.models import Delivery, Event, Printer, User, WebhookTarget
from appliance.row_ids import row_id
from appliance.services import webhook_templates as tpl
from appliance.services.runtime_settings import effective
from appliance.services.webhook_net import is_restricted, url_problem

# type -> (OctoPrint-Webhooks topic, message)
EVENT_TOPICS: dict[str, tuple[str, str]] = {
    "print.started": ("Print Started", "Your print has started."),
    "print.done": ("Print Done", "Your print is done."),
    "print.failed": ("Print Failed", "Something went wrong and your print has failed."),
    "print.cancelled": ("Print Cancelled", "Your print has been cancelled."),
    "print.paused": ("Print Paused", "Your print has been paused."),
    "print.resumed": ("Print Resumed", "Your print has resumed."),
    "print.progress": ("Print Progress", "Your print is {progress}% complete."),
    "printer.user_action_needed": ("User Action Needed",
                                   "User action needed. You may need to change the filament."),
    "printer.error": ("Error", "There was an error."),
    "printer.offline": ("Printer Offline", "Your printer has stopped checking in."),
    "printer.online": ("Printer Online", "Your printer is back online."),
}
EVENT_TYPES = tuple(EVENT_TOPICS)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CONTENT_TYPES = ("json", "form")
ROTATION_OVERLAP = timedelta(hours=24)
# What browsers, proxies and most servers accept in a URL; longer is a paste gone wrong.
MAX_URL_LENGTH = 2048
_DROPPED_HEADERS = {"host", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature",
                    "herald-sequence", "transfer-encoding"}
_STANDARD_BODY = {
    "deviceIdentifier": "@deviceIdentifier",
    "apiSecret": "@apiSecret",
    "topic": "@topic",
    "message": "@message",
    "extra": "@extra",
    "state": "@state",
    "job": "@job",
    "progress": "@progress",
    "currentZ": "@currentZ",
    "offsets": "@offsets",
    "currentTime": "@currentTime",
    "printer": "@printer",
    "sequence": "@sequence",
}


def _pretty(value: dict) -> str:
    return json.dumps(value, indent=2)


PRESETS: dict[str, dict[str, Any]] = {
    "blank": {
        "label": "Blank (OctoPrint-Webhooks default body)",
        "url": "https://",
        "method": "POST",
        "content_type": "json",
        "headers": "{}",
        "body": _pretty(_STANDARD_BODY),
        "help": "The body OctoPrint-Webhooks sends by default; change it freely.",
    },
    "home_assistant": {
        "label": "Home Assistant webhook trigger",
        "url": "http://homeassistant.local:8123/api/webhook/YOUR_WEBHOOK_ID",
        "method": "POST",
        "content_type": "json",
        "headers": "{}",
        "body": _pretty({
            "topic": "@topic", "event": "@event", "message": "@message", "printer": "@printer.name",
            "printer_id": "@printer.id", "state": "@state.text", "file": "@job.file.name",
            "progress": "@progress.completion", "milestone": "@percentCompleteMilestone",
            "sequence": "@sequence", "occurred_at": "@occurredAt",
        }),
        "help": "In Home Assistant, add an automation with a Webhook trigger and paste its URL here; "
                "the fields arrive as trigger.json.",
    },
    "ntfy": {
        "label": "ntfy notification",
        "url": "https://ntfy.example.com/",
        "method": "POST",
        "content_type": "json",
        "headers": "{}",
        "body": _pretty({"topic": "YOUR_TOPIC", "title": "@printer.name: @topic",
                         "message": "@message", "tags": ["printer"]}),
        "help": "Publishes JSON to the ntfy server's root URL; set your server and topic.",
    },
    "discord": {
        "label": "Discord channel webhook",
        "url": "https://discord.com/api/webhooks/ID/TOKEN",
        "method": "POST",
        "content_type": "json",
        "headers": "{}",
        "body": _pretty({"username": "Herald", "content": "**@printer.name** @topic: @message"}),
        "help": "Channel settings, Integrations, Webhooks: copy the webhook URL here.",
    },
    "slack": {
        "label": "Slack incoming webhook",
        "url": "https://hooks.slack.com/services/T000/B000/XXXX",
        "method": "POST",
        "content_type": "json",
        "headers": "{}",
        "body": _pretty({"text": "*@printer.name* @topic: @message"}),
        "help": "Create an incoming webhook in your Slack app and paste its URL here.",
    },
}
DEFAULT_EVENTS = ["print.started", "print.done", "print.failed", "print.cancelled", "print.paused",
                  "printer.user_action_needed", "printer.error"]


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex


# --- validating what a user saves -----------------------------------------------------


def _problems_error(problems: list[dict[str, Any]]) -> APIError:
    first = problems[0]
    where = f" (line {first['line']}, column {first['column']})" if "line" in first else ""
    return APIError(422, "invalid_target", f"{first['field']}: {first['problem']}{where}",
                    extra={"details": problems})


async def may_use_private(herald, owner: User) -> bool:
    if owner.is_admin:
        return True
    return bool(await effective(herald, "webhook_allow_private"))


def _literal_private(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return is_restricted(str(ipaddress.ip_address(host)))
    except ValueError:
        return False


async def clean_target(herald, owner: User, data: dict[str, Any],
                       existing: WebhookTarget | None = None) -> dict[str, Any]:
    """Validated model fields from a user's input (API JSON or form); raises APIError 422."""
    def get(name: str, default: Any) -> Any:
        if name in data and data[name] is not None:
            return data[name]
        return getattr(existing, name) if existing is not None and hasattr(existing, name) else default

    problems: list[dict[str, Any]] = []

    def bad(field: str, message: str) -> None:
        problems.append({"field": field, "problem": message})

    def choice(field: str, default: str, allowed, message: str, case=str.upper) -> str:
        value = case(str(get(field, default)))
        if value not in allowed:
            bad(field, message)
        return value

    def url_shape(url: str, missing: str, render=lambda text: text) -> str | None:
        """What is wrong with a URL's form (length first: a long one is not rendered), or None."""
        if len(url) > MAX_URL_LENGTH:
            return f"the URL is {len(url)} characters long; at most {MAX_URL_LENGTH} are allowed"
        return url_problem(render(url)) if url else missing

    name = str(get("name", "")).strip()
    if not name or len(name) > 100:
        bad("name", "give the webhook a name of 1 to 100 characters")
    method = choice("method", "POST", METHODS, f"must be one of {', '.join(METHODS)}")
    content_type = choice("content_type", "json", CONTENT_TYPES, "must be json or form", case=str.lower)
    events = get("events", list(DEFAULT_EVENTS))
    if isinstance(events, str):
        events = [e for e in events.replace(",", " ").split() if e]
    if not isinstance(events, list) or any(e not in EVENT_TOPICS for e in events):
        bad("events", f"each event must be one of {', '.join(EVENT_TYPES)}")
        events = []
    printer_ids = get("printer_ids", [])
    if isinstance(printer_ids, str):
        printer_ids = [p for p in printer_ids.replace(",", " ").split() if p]
    if not isinstance(printer_ids, list):
        bad("printer_ids", "must be a list of printer ids")
        printer_ids = []
    elif printer_ids:
        owned = set(await Printer.filter(owner_id=owner.id, id__in=printer_ids).values_list("id", flat=True))
        missing = [p for p in printer_ids if p not in owned]
        if missing:
            bad("printer_ids", f"no printer of yours has the id {missing[0]}")
    try:
        step = int(get("progress_step", 10))
        if not 1 <= step <= 99:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        bad("progress_step", "must be a whole number of percent from 1 to 99")
        step = 10
    oauth_enabled = get("oauth_enabled", False)
    oauth_enabled = oauth_enabled if isinstance(oauth_enabled, bool) else str(oauth_enabled).lower() in ("1", "true", "on", "yes")
    url = str(get("url", "")).strip()
    shape = url_shape(url, "the URL is required", lambda text: tpl.render_url(text, _SAMPLE_URL_PARAMS))
    if shape:
        bad("url", shape)
    for problem in tpl.check_url("url", url) if len(url) <= MAX_URL_LENGTH else ():
        problems.append(problem.as_dict())
    private_ok = await may_use_private(herald, owner)
    if not shape and not private_ok and _literal_private(url):
        bad("url", "private, loopback and link-local addresses are only allowed for an admin's webhooks")
    headers = str(get("headers", "{}"))
    body = str(get("body", PRESETS["blank"]["body"]))
    for problem in tpl.check_template("headers", headers, allow_unknown=oauth_enabled, values_are_strings=True):
        problems.append(problem.as_dict())
    for problem in tpl.check_template("body", body, allow_unknown=oauth_enabled, snapshot_allowed=True):
        problems.append(problem.as_dict())
    fields: dict[str, Any] = {
        "name": name, "method": method, "content_type": content_type, "events": events,
        "printer_ids": printer_ids, "progress_step": step, "url": url, "headers": headers or "{}",
        "body": body or "{}", "oauth_enabled": oauth_enabled,
        "device_identifier": str(get("device_identifier", ""))[:100],
        "preset": str(get("preset", ""))[:32],
    }
    enabled = data.get("enabled")
    if enabled is not None:
        fields["enabled"] = enabled if isinstance(enabled, bool) else str(enabled).lower() in ("1", "true", "on", "yes")
    if "api_secret" in data and data["api_secret"] is not None:
        secret = str(data["api_secret"])
        fields["api_secret"] = herald.secret_box.encrypt(secret) if secret else ""
    if oauth_enabled:
        oauth_url = str(get("oauth_url", "")).strip()
        problem = url_shape(oauth_url, "the OAuth URL is required when OAuth is on")
        if problem:
            bad("oauth_url", problem)
        elif not private_ok and _literal_private(oauth_url):
            bad("oauth_url", "private, loopback and link-local addresses are only allowed for an admin's webhooks")
        oauth_method = choice("oauth_method", "POST", METHODS, f"must be one of {', '.join(METHODS)}")
        oauth_ct = choice("oauth_content_type", "json", CONTENT_TYPES, "must be json or form", case=str.lower)
        oauth_headers = str(get("oauth_headers", "{}")) or "{}"
        for p in tpl.check_template("oauth_headers", oauth_headers, values_are_strings=True):
            problems.append(p.as_dict())
        fields.update(oauth_url=oauth_url, oauth_method=oauth_method, oauth_content_type=oauth_ct,
                      oauth_headers=oauth_headers)
        if "oauth_body" in data and data["oauth_body"] is not None:
            oauth_body = str(data["oauth_body"]) or "{}"
            for p in tpl.check_template("oauth_body", oauth_body):
                problems.append(p.as_dict())
            fields["oauth_body"] = herald.secret_box.encrypt(oauth_body)
        fields["oauth_token"] = ""  # new settings: fetch a new token
        fields["oauth_expires_at"] = None
    if problems:
        raise _problems_error(problems)
    return fields


_SAMPLE_URL_PARAMS: dict[str, Any] = {root: "x" for root in tpl.KNOWN_ROOTS}


async def create_target(herald, owner: User, data: dict[str, Any]) -> WebhookTarget:
    fields = await clean_target(herald, owner, data)
    fields.setdefault("enabled", True)
    return await shielded(WebhookTarget.create(
        owner_id=owner.id, signing_secret=herald.secret_box.encrypt(new_signing_secret()), **fields))


async def update_target(herald, owner: User, target: WebhookTarget, data: dict[str, Any]) -> WebhookTarget:
    fields = await clean_target(herald, owner, data, existing=target)
    if fields.get("enabled") and not target.enabled:
        fields.update(disabled_reason="", disabled_at=None, failing_since=None)
    target.update_from_dict(fields)
    await shielded(target.save())
    return target


async def set_enabled(target: WebhookTarget, enabled: bool) -> None:
    target.enabled = enabled
    if enabled:
        target.disabled_reason = ""
        target.disabled_at = None
        target.failing_since = None
    await shielded(target.save(update_fields=["enabled", "disabled_reason", "disabled_at", "failing_since",
                                              "updated_at"]))


async def rotate_secret(herald, target: WebhookTarget) -> str:
    """A new whsec_ secret; the old one keeps signing too for ROTATION_OVERLAP."""
    new = new_signing_secret()
    target.previous_signing_secret = target.signing_secret
    target.previous_secret_expires_at = herald.clock.now() + ROTATION_OVERLAP
    target.signing_secret = herald.secret_box.encrypt(new)
    await shielded(target.save(update_fields=["signing_secret", "previous_signing_secret",
                                              "previous_secret_expires_at", "updated_at"]))
    return new


async def get_target(owner: User, target_id: Any) -> WebhookTarget:
    number = row_id(WebhookTarget, target_id)
    target = await WebhookTarget.get_or_none(id=number, owner_id=owner.id) if number is not None else None
    if target is None:
        raise APIError(404, "not_found", "No such webhook.")
    return target


async def get_delivery(owner: User, delivery_id: Any) -> Delivery:
    number = row_id(Delivery, delivery_id)
    if number is None:
        raise APIError(404, "not_found", "No such delivery.")
    delivery = await Delivery.get_or_none(id=number, target__owner_id=owner.id).prefetch_related("target")
    if delivery is None:
        raise APIError(404, "not_found", "No such delivery.")
    return delivery


def target_json(herald, target: WebhookTarget) -> dict[str, Any]:
    return {
        "id": target.id, "name": target.name, "preset": target.preset, "url": target.url,
        "method": target.method, "content_type": target.content_type, "headers": target.headers,
        "body": target.body, "events": target.events, "printer_ids": target.printer_ids,
        "progress_step": target.progress_step, "device_identifier": target.device_identifier,
        "api_secret_set": bool(target.api_secret),
        "signing_secret": herald.secret_box.decrypt(target.signing_secret),
        "oauth_enabled": target.oauth_enabled, "oauth_url": target.oauth_url,
        "oauth_method": target.oauth_method, "oauth_content_type": target.oauth_content_type,
        "oauth_headers": target.oauth_headers,
        "enabled": target.enabled, "disabled_reason": target.disabled_reason or None,
        "failing_since": _iso(target.failing_since),
        "created_at": _iso(target.created_at),
    }


def delivery_json(delivery: Delivery, attempts: list | None = None) -> dict[str, Any]:
    out = {
        "id": delivery.id, "target_id": delivery.target_id, "event_type": delivery.event_type,
        "printer_id": delivery.printer_id, "sequence": delivery.sequence,
        "webhook_id": delivery.webhook_id, "status": delivery.status, "attempts": delivery.attempts,
        "next_attempt_at": _iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "last_error": delivery.last_error or None, "occurred_at": _iso(delivery.occurred_at),
        "accepted_at": _iso(delivery.accepted_at), "finished_at": _iso(delivery.finished_at),
        "is_test": delivery.is_test, "resend_of": delivery.resend_of,
        "request": {"method": delivery.method, "url": delivery.url, "headers": delivery.headers,
                    "body_kind": delivery.body_kind, "body": delivery.body},
    }
    if attempts is not None:
        out["attempt_log"] = [{
            "started_at": _iso(a.started_at), "status_code": a.status_code, "latency_ms": a.latency_ms,
            "response": a.response, "error": a.error or None,
        } for a in attempts]
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# --- events to deliveries ----------------------------------------------------------------


def event_params(herald, target: WebhookTarget, *, event_type: str, event_id: str, sequence: int,
                 occurred_at: datetime, payload: dict | None, printer_data: dict | None,
                 printer: dict[str, Any], milestone: int | None) -> dict[str, Any]:
    """The @params of one event for one target (OctoPrint-Webhooks' names, plus Herald's)."""
    topic, message = EVENT_TOPICS.get(event_type, (event_type, event_type))
    payload = payload or {}
    data = printer_data or {}
    if event_type == "print.progress":
        message = message.format(progress=milestone if milestone is not None else payload.get("progress", ""))
    elif event_type == "printer.error" and payload.get("error"):
        message = f"There was an error: {payload['error']}"
    return {
        "deviceIdentifier": target.device_identifier,
        "apiSecret": herald.secret_box.decrypt(target.api_secret) if target.api_secret else "",
        "topic": topic,
        "message": message,
        "extra": payload,
        "state": data.get("state", {}),
        "job": data.get("job", {}),
        "progress": data.get("progress", {}),
        "currentZ": data.get("currentZ"),
        "offsets": data.get("offsets", {}),
        "meta": data.get("meta", {}),
        "currentTime": int(occurred_at.timestamp()),
        "percentCompleteMilestone": milestone if milestone is not None else "",
        "printer": printer,
        "sequence": sequence,
        "event": event_type,
        "eventId": event_id,
        "occurredAt": occurred_at.isoformat(),
    }


def build_request(target: WebhookTarget, params: dict[str, Any], *, has_snapshot: bool) -> dict[str, Any]:
    """The frozen request of a delivery: url, method, headers, body_kind, body, snapshot_key."""
    defer = frozenset() if target.oauth_enabled else None
    headers_template = json.loads(target.headers or "{}")
    headers: dict[str, Any] = {}
    for key, value in headers_template.items():
        if str(key).lower() in _DROPPED_HEADERS:
            continue
        rendered = tpl.render(value, params, defer=defer)
        headers[str(key)] = rendered if isinstance(rendered, dict) else tpl.as_text(rendered)
    body_template = json.loads(target.body or "{}")
    snapshot_key = ""
    for key, value in list(body_template.items()):
        if value == tpl.SNAPSHOT:
            del body_template[key]
            if has_snapshot and not snapshot_key:
                snapshot_key = key
    body = tpl.render(body_template, params, defer=defer)
    if target.method == "GET":
        kind = "query"
    elif snapshot_key:
        kind = "multipart"
    else:
        kind = target.content_type
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


async def enqueue_event(herald, event: Event, printer: Printer, connection,
                        notify: Callable[[], None] | None = None) -> int:
    """Create the deliveries of one stored event (an event listener; runs in its transaction)."""
    # Match on three columns first: loading every target of the owner as a model costs
    # more than the rest of the event.
    candidates = await (WebhookTarget.filter(owner_id=printer.owner_id, enabled=True).using_db(connection)
                        .values_list("id", "events", "printer_ids"))
    wanted = [tid for tid, events, printer_ids in candidates
              if event.type in (events or []) and (not printer_ids or printer.id in printer_ids)]
    if not wanted:
        return 0
    matching = await WebhookTarget.filter(id__in=wanted).using_db(connection).order_by("id")
    previous = current = 0.0
    if event.type == "print.progress":
        current = _progress_of(event.payload)
        previous = await _previous_progress(event, connection)
    now = herald.clock.now()
    rows = []
    for target in matching:
        milestone = None
        if event.type == "print.progress":
            milestone = progress_milestone(target.progress_step, previous, current)
            if milestone is None:
                continue
        rows.append(_delivery_row(herald, target, event_type=event.type, event_id=event.event_id,
                                  sequence=event.sequence, occurred_at=event.occurred_at,
                                  payload=event.payload, printer_data=event.printer_data,
                                  printer={"id": printer.id, "name": printer.name}, milestone=milestone,
                                  snapshot_path=event.snapshot_path, now=now, event_pk=event.id))
    if rows:
        await Delivery.bulk_create(rows, using_db=connection)
        if notify is not None:
            notify()
    return len(rows)


def _delivery_row(herald, target: WebhookTarget, *, event_type: str, event_id: str, sequence: int,
                  occurred_at: datetime, payload, printer_data, printer: dict[str, Any],
                  milestone: int | None, snapshot_path: str | None, now: datetime,
                  event_pk: int | None, is_test: bool = False) -> Delivery:
    params = event_params(herald, target, event_type=event_type, event_id=event_id, sequence=sequence,
                          occurred_at=occurred_at, payload=payload, printer_data=printer_data,
                          printer=printer, milestone=milestone)
    request = build_request(target, params, has_snapshot=bool(snapshot_path))
    return Delivery(
        target_id=target.id, event_id=event_pk, printer_id=printer.get("id"), event_type=event_type,
        sequence=sequence, occurred_at=occurred_at, accepted_at=now, webhook_id=new_webhook_id(),
        snapshot_path=snapshot_path if request["snapshot_key"] else None, is_test=is_test,
        status="pending", next_attempt_at=now, **request,
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


async def enqueue_test(herald, owner: User, target: WebhookTarget, event_type: str,
                       printer_id: str | None = None, notify: Callable[[], None] | None = None) -> Delivery:
    if event_type not in EVENT_TOPICS:
        raise APIError(422, "invalid_event_type", f"type must be one of {', '.join(EVENT_TYPES)}")
    printer = None
    if printer_id:
        printer = await Printer.get_or_none(id=printer_id, owner_id=owner.id)
        if printer is None:
            raise APIError(404, "not_found", "No such printer.")
    else:
        printer = await Printer.filter(owner_id=owner.id).order_by("created_at").first()
    sample = sample_event(event_type, printer)
    now = herald.clock.now()
    row = _delivery_row(herald, target, event_type=event_type, event_id=f"test-{uuid.uuid4().hex[:12]}",
                        sequence=0, occurred_at=now, payload=sample["payload"],
                        printer_data=sample["printer_data"],
                        printer={"id": printer.id if printer else "test", "name": printer.name if printer else "Test printer"},
                        milestone=sample["milestone"], snapshot_path=None, now=now, event_pk=None, is_test=True)
    await shielded(row.save())
    if notify is not None:
        notify()
    return row


async def resend(herald, delivery: Delivery, notify: Callable[[], None] | None = None) -> Delivery:
    """Queue the same request again (same webhook-id and body) as a new delivery row."""
    now = herald.clock.now()
    copy = Delivery(
        target_id=delivery.target_id, event_id=delivery.event_id, printer_id=delivery.printer_id,
        event_type=delivery.event_type, sequence=delivery.sequence, occurred_at=delivery.occurred_at,
        accepted_at=now, webhook_id=delivery.webhook_id, url=delivery.url, method=delivery.method,
        headers=delivery.headers, body_kind=delivery.body_kind, body=delivery.body,
        snapshot_key=delivery.snapshot_key, snapshot_path=delivery.snapshot_path,
        is_test=delivery.is_test, resend_of=delivery.id, status="pending", next_attempt_at=now,
    )
    await shielded(copy.save())
    if notify is not None:
        notify()
    return copy


async def notices(owner: User) -> list[WebhookTarget]:
    """Targets Herald disabled, to show on the dashboard until the user acts."""
    return await WebhookTarget.filter(owner_id=owner.id, enabled=False).exclude(disabled_reason="")


async def snapshot_needed(snapshot_path: str) -> bool:
    """Whether a stored snapshot is still needed by a delivery that has not finished.

    The events area removes an event's snapshot file once this answers False.
    """
    return await Delivery.filter(snapshot_path=snapshot_path, status__in=("pending", "in_flight")).exists()
