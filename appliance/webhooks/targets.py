"""A user's webhook targets: validation, saving, rotating secrets, and what the API shows of them.

Presets are in ``presets.py``; turning events into deliveries is ``enqueue.py``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from appliance.accounts.models import User
from appliance.core.db import shielded
from appliance.core.errors import HeraldError, NotFound, Unprocessable
from appliance.core.herald import Herald
from appliance.core.row_ids import row_id
from appliance.core.runtime_settings import effective
from appliance.printers.event_types import EVENT_TOPICS, EVENT_TYPES
from appliance.printers.models import Printer
from appliance.webhooks import templates as tpl
from appliance.webhooks.models import Delivery, DeliveryAttempt, WebhookTarget
from appliance.webhooks.outbound import is_restricted, numeric_host_problem, url_problem
from appliance.webhooks.presets import DEFAULT_EVENTS, PRESETS, placeholder_in
from appliance.webhooks.redact import redact_request

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CONTENT_TYPES = ("json", "form")
ROTATION_OVERLAP = timedelta(hours=24)
# What browsers, proxies and most servers accept in a URL; longer is a paste gone wrong.
MAX_URL_LENGTH = 2048
# A header or body template, as the API's 64 KiB JSON bodies allow on the form too.
MAX_TEMPLATE_CHARS = 32 * 1024
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex


# --- validating what a user saves -----------------------------------------------------


def _problems_error(problems: list[dict[str, Any]]) -> HeraldError:
    first = problems[0]
    where = f" (line {first['line']}, column {first['column']})" if "line" in first else ""
    return Unprocessable(f"{first['field']}: {first['problem']}{where}", extra={"details": problems}, code="invalid_target")


async def may_use_private(herald: Herald, owner: User) -> bool:
    if owner.is_admin:
        return True
    return bool(await effective(herald, "webhook_allow_private"))


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _literal_private(url: str) -> bool:
    host = _host(url)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return is_restricted(str(ipaddress.ip_address(host)))
    except ValueError:
        return False


async def clean_target(herald: Herald, owner: User, data: dict[str, Any],
                       existing: WebhookTarget | None = None) -> dict[str, Any]:
    """Validated model fields from a user's input (API JSON or form); raises HeraldError 422."""
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
        if not url:
            return missing
        rendered = render(url)
        return url_problem(rendered) or numeric_host_problem(_host(rendered))

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
    for field_name, text in (("url", url), ("headers", headers), ("body", body)):
        placeholder = placeholder_in(text)
        if placeholder and not (field_name == "url" and shape):
            bad(field_name, placeholder)
    for field_name, text in (("headers", headers), ("body", body)):
        if len(text) > MAX_TEMPLATE_CHARS:
            bad(field_name, f"is {len(text):,} characters long; at most {MAX_TEMPLATE_CHARS:,} are allowed")
    if len(headers) <= MAX_TEMPLATE_CHARS:
        for problem in tpl.check_template("headers", headers, allow_unknown=oauth_enabled, values_are_strings=True):
            problems.append(problem.as_dict())
        problems.extend(_header_problems("headers", headers))
    if len(body) <= MAX_TEMPLATE_CHARS:
        for problem in tpl.check_template("body", body, allow_unknown=oauth_enabled, snapshot_allowed=True):
            problems.append(problem.as_dict())
    messages = _clean_messages(get("messages", {}), problems)
    fields: dict[str, Any] = {
        "messages": messages,
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
        oauth_url_problem = url_shape(oauth_url, "the OAuth URL is required when OAuth is on")
        if oauth_url_problem:
            bad("oauth_url", oauth_url_problem)
        elif not private_ok and _literal_private(oauth_url):
            bad("oauth_url", "private, loopback and link-local addresses are only allowed for an admin's webhooks")
        oauth_method = choice("oauth_method", "POST", METHODS, f"must be one of {', '.join(METHODS)}")
        oauth_ct = choice("oauth_content_type", "json", CONTENT_TYPES, "must be json or form", case=str.lower)
        oauth_headers = str(get("oauth_headers", "{}")) or "{}"
        if len(oauth_headers) > MAX_TEMPLATE_CHARS:
            bad("oauth_headers", f"is {len(oauth_headers):,} characters long; at most {MAX_TEMPLATE_CHARS:,} are allowed")
        else:
            for p in tpl.check_template("oauth_headers", oauth_headers, values_are_strings=True):
                problems.append(p.as_dict())
            problems.extend(_header_problems("oauth_headers", oauth_headers))
        fields.update(oauth_url=oauth_url, oauth_method=oauth_method, oauth_content_type=oauth_ct,
                      oauth_headers=oauth_headers)
        if "oauth_body" in data and data["oauth_body"] is not None:
            oauth_body = str(data["oauth_body"]) or "{}"
            if len(oauth_body) > MAX_TEMPLATE_CHARS:
                bad("oauth_body", f"is {len(oauth_body):,} characters long; at most {MAX_TEMPLATE_CHARS:,} are allowed")
            for p in tpl.check_template("oauth_body", oauth_body) if len(oauth_body) <= MAX_TEMPLATE_CHARS else ():
                problems.append(p.as_dict())
            fields["oauth_body"] = herald.secret_box.encrypt(oauth_body)
        fields["oauth_token"] = ""  # new settings: fetch a new token
        fields["oauth_expires_at"] = None
    if problems:
        raise _problems_error(problems)
    return fields


def _header_problems(field_name: str, text: str) -> list[dict[str, Any]]:
    """Header names that are not HTTP tokens and values with line breaks or NUL (never sendable)."""
    try:
        parsed = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        return []  # check_template has named the problem
    if not isinstance(parsed, dict):
        return []
    problems = []
    for key, value in parsed.items():
        if not _HEADER_NAME.fullmatch(key):
            problems.append({"field": field_name, "problem": f"header name {key[:40]!r} may hold only letters, digits and !#$%&'*+-.^_`|~"})
        elif isinstance(value, str) and any(c in value for c in "\r\n\0"):
            problems.append({"field": field_name, "problem": f'header "{key}" must not contain a line break or NUL'})
    return problems


_SAMPLE_URL_PARAMS: dict[str, Any] = {root: "x" for root in tpl.KNOWN_ROOTS}
MAX_MESSAGE_LENGTH = 1000


def _clean_messages(value: Any, problems: list[dict[str, Any]]) -> dict[str, str]:
    """Per-event @message texts: event type -> template text; an empty text means the default."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        problems.append({"field": "messages", "problem": "must be an object of event type to message text"})
        return {}
    out: dict[str, str] = {}
    for event_type, text in value.items():
        field = f"messages.{event_type}"
        if event_type not in EVENT_TOPICS:
            problems.append({"field": field, "problem": f"each event must be one of {', '.join(EVENT_TYPES)}"})
            continue
        if text is None:
            continue
        if not isinstance(text, str):
            problems.append({"field": field, "problem": "must be text"})
            continue
        text = text.strip()
        if len(text) > MAX_MESSAGE_LENGTH:
            problems.append({"field": field, "problem": f"at most {MAX_MESSAGE_LENGTH} characters"})
            continue
        for problem in tpl.check_url(field, text):
            problems.append({**problem.as_dict(), "problem": problem.message.replace("cannot be used here",
                                                                                       "is not an @param")})
        if text and text != EVENT_TOPICS[event_type][1]:
            out[event_type] = text
    return out


async def create_target(herald: Herald, owner: User, data: dict[str, Any]) -> WebhookTarget:
    fields = await clean_target(herald, owner, data)
    fields.setdefault("enabled", True)
    return await shielded(WebhookTarget.create(
        owner_id=owner.id, signing_secret=herald.secret_box.encrypt(new_signing_secret()), **fields))


async def update_target(herald: Herald, owner: User, target: WebhookTarget, data: dict[str, Any]) -> WebhookTarget:
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


async def rotate_secret(herald: Herald, target: WebhookTarget) -> str:
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
        raise NotFound("No such webhook.")
    return target


async def list_targets(owner: User) -> list[WebhookTarget]:
    return await WebhookTarget.filter(owner_id=owner.id).order_by("id")


async def delete_target(target: WebhookTarget) -> None:
    """Delete a webhook with its deliveries and their attempts."""
    await shielded(target.delete())


DELIVERY_STATUSES = ("pending", "in_flight", "delivered", "failed")


async def list_deliveries(target: WebhookTarget, *, limit: int = 100, status: str | None = None) -> list[Delivery]:
    """A webhook's newest deliveries first."""
    query = Delivery.filter(target_id=target.id)
    if status:
        query = query.filter(status=status)
    return await query.order_by("-id").limit(limit)


async def delivery_attempts(delivery: Delivery) -> list[DeliveryAttempt]:
    return await DeliveryAttempt.filter(delivery_id=delivery.id).order_by("id")


async def get_delivery(owner: User, delivery_id: Any) -> Delivery:
    number = row_id(Delivery, delivery_id)
    if number is None:
        raise NotFound("No such delivery.")
    delivery = await Delivery.get_or_none(id=number, target__owner_id=owner.id).prefetch_related("target")
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery


def target_json(herald: Herald, target: WebhookTarget) -> dict[str, Any]:
    return {
        "id": target.id, "name": target.name, "preset": target.preset, "url": target.url,
        "method": target.method, "content_type": target.content_type, "headers": target.headers,
        "body": target.body, "events": target.events, "printer_ids": target.printer_ids,
        "progress_step": target.progress_step, "device_identifier": target.device_identifier,
        "messages": {t: (target.messages or {}).get(t) or msg for t, (_topic, msg) in EVENT_TOPICS.items()},
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
        # The columns hold the request redacted; redacting again by name also covers rows
        # stored before secrets were sealed.
        "request": {"method": delivery.method, **shown_request(delivery), "body_kind": delivery.body_kind},
    }
    if attempts is not None:
        out["attempt_log"] = [{
            "started_at": _iso(a.started_at), "status_code": a.status_code, "latency_ms": a.latency_ms,
            "response": a.response, "error": a.error or None,
        } for a in attempts]
    return out


def shown_request(delivery: Delivery) -> dict[str, Any]:
    """url, headers and body of a delivery as the API and pages show them (secrets redacted)."""
    shown = redact_request({"url": delivery.url, "headers": delivery.headers, "body": delivery.body}, [])
    return {"url": shown["url"], "headers": shown["headers"], "body": shown["body"]}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


async def notices(owner: User) -> list[WebhookTarget]:
    """Targets Herald disabled, to show on the dashboard until the user acts."""
    return await WebhookTarget.filter(owner_id=owner.id, enabled=False).exclude(disabled_reason="")


async def snapshot_needed(snapshot_path: str) -> bool:
    """Whether a stored snapshot is still needed by a delivery that has not finished.

    The events area removes an event's snapshot file once this answers False.
    """
    return await Delivery.filter(snapshot_path=snapshot_path, status__in=("pending", "in_flight")).exists()
