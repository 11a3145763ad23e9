"""Moving from OctoPrint-Webhooks: its hooks (``plugins.webhooks.hooks`` in OctoPrint's
config.yaml, as the Herald plugin reads them) become Herald webhook targets.

Each hook becomes one target for the printer that sent it, with the same URL, method,
content type, headers, body, API secret, device identifier, OAuth request, events,
per-event messages and progress step. What Herald cannot carry over is named per hook.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from appliance.accounts.models import User
from appliance.core.errors import HeraldError, Unprocessable
from appliance.core.herald import Herald
from appliance.webhooks import targets as service
from appliance.webhooks.models import WebhookTarget

PRESET = "octoprint_webhooks"  # marks an imported target (and finds it on a second import)
MAX_HOOKS = 50

# OctoPrint-Webhooks' switch and message setting of each event it knows.
EVENTS: tuple[tuple[str, str, str], ...] = (
    ("eventPrintStarted", "eventPrintStartedMessage", "print.started"),
    ("eventPrintDone", "eventPrintDoneMessage", "print.done"),
    ("eventPrintFailed", "eventPrintFailedMessage", "print.failed"),
    ("eventPrintPaused", "eventPrintPausedMessage", "print.paused"),
    ("eventUserActionNeeded", "eventUserActionNeededMessage", "printer.user_action_needed"),
    ("eventError", "eventErrorMessage", "printer.error"),
    ("event_print_progress", "eventPrintProgressMessage", "print.progress"),
)
# Settings of a hook Herald reads; any other non-empty one is named as not carried over.
_KNOWN = {
    "url", "http_method", "content_type", "headers", "data", "apiSecret", "deviceIdentifier",
    "oauth", "oauth_url", "oauth_http_method", "oauth_content_type", "oauth_headers", "oauth_data",
    "event_print_progress_interval", "webhook_enabled", "test_event",
    *(switch for switch, _m, _t in EVENTS), *(message for _s, message, _t in EVENTS),
}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "on", "yes")


def _template(value: Any, default: str) -> str:
    """A JSON template as text (OctoPrint stores it as text; a YAML mapping is accepted too)."""
    if value is None or value == "":
        return default
    if isinstance(value, dict):
        return json.dumps(value, indent=2)
    return str(value)


def _name(hook: dict[str, Any], index: int) -> str:
    host = urlsplit(str(hook.get("url") or "")).hostname or "hook"
    return f"OctoPrint-Webhooks {index + 1}: {host}"[:100]


def convert(hook: dict[str, Any], index: int, printer_id: str) -> tuple[dict[str, Any], list[str]]:
    """One OctoPrint-Webhooks hook as Herald's target fields, and what is not carried over."""
    lost: list[str] = []
    events, messages = [], {}
    for switch, message_key, event_type in EVENTS:
        if _flag(hook.get(switch, False)):
            events.append(event_type)
        text = hook.get(message_key)
        if isinstance(text, str) and text.strip():
            messages[event_type] = text
    step: Any = hook.get("event_print_progress_interval", 10)
    try:
        step = int(str(step).strip())
        if not 1 <= step <= 99:
            raise ValueError
    except ValueError:
        if "print.progress" in events:
            lost.append(f"progress interval {hook.get('event_print_progress_interval')!r} (Herald takes 1 to 99; "
                        "10 is used)")
        step = 10
    content_type = str(hook.get("content_type") or "JSON").upper()
    data: dict[str, Any] = {
        "name": _name(hook, index), "preset": PRESET, "url": str(hook.get("url") or "").strip(),
        "method": str(hook.get("http_method") or "POST").upper(),
        "content_type": "json" if content_type == "JSON" else "form",
        "headers": _template(hook.get("headers"), "{}"),
        "body": _template(hook.get("data"), "{}"),
        "events": events, "messages": messages, "progress_step": step, "printer_ids": [printer_id],
        "device_identifier": str(hook.get("deviceIdentifier") or ""),
        "api_secret": str(hook.get("apiSecret") or ""),
        "enabled": _flag(hook.get("webhook_enabled", True)),
        "oauth_enabled": _flag(hook.get("oauth", False)),
    }
    if len(data["device_identifier"]) > 100:
        lost.append("the device identifier beyond its first 100 characters")
    if data["oauth_enabled"]:
        oauth_type = str(hook.get("oauth_content_type") or "JSON").upper()
        data.update(oauth_url=str(hook.get("oauth_url") or "").strip(),
                    oauth_method=str(hook.get("oauth_http_method") or "POST").upper(),
                    oauth_content_type="json" if oauth_type == "JSON" else "form",
                    oauth_headers=_template(hook.get("oauth_headers"), "{}"),
                    oauth_body=_template(hook.get("oauth_data"), "{}"))
    try:
        headers = json.loads(data["headers"])
    except ValueError:
        headers = {}
    if isinstance(headers, dict):
        dropped = [h for h in headers if str(h).lower() in _HERALD_SETS]
        if dropped:
            lost.append(f"header {', '.join(dropped)} (Herald sets it itself)")
    custom = hook.get("customEvents") or []
    if custom:
        names = ", ".join(str(c.get("name")) for c in custom if isinstance(c, dict))
        lost.append(f"custom events ({names}): Herald sends only its own event types")
    cooldown = hook.get("event_cooldown")
    if cooldown not in (None, "", 0, "0"):
        lost.append(f"event cooldown of {cooldown} s: Herald sends every event")
    for key, value in hook.items():
        if key not in _KNOWN and key not in ("customEvents", "event_cooldown") and value not in (None, "", [], {}, False):
            lost.append(f"setting {key}")
    return data, lost


_HERALD_SETS = {"host", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature",
                "herald-sequence", "transfer-encoding"}


async def import_hooks(herald: Herald, owner_id: int, printer_id: str, hooks: Any) -> dict[str, Any]:
    """Create a target per hook for the printer's owner; a hook imported before (same URL,
    method and body for this printer) is skipped, so importing twice creates nothing new."""
    owner = await User.get(id=owner_id)
    if not isinstance(hooks, list) or not all(isinstance(h, dict) for h in hooks):
        raise Unprocessable("hooks: must be a list of OctoPrint-Webhooks hooks (objects)", code="invalid_hooks")
    if len(hooks) > MAX_HOOKS:
        raise Unprocessable(f"hooks: at most {MAX_HOOKS} at a time", code="invalid_hooks")
    existing = await WebhookTarget.filter(owner_id=owner.id, preset=PRESET)
    seen = {(t.url, t.method, t.body, tuple(t.printer_ids or ())) for t in existing}
    results: list[dict[str, Any]] = []
    for index, hook in enumerate(hooks):
        data, lost = convert(hook, index, printer_id)
        key = (data["url"], data["method"], data["body"], (printer_id,))
        result: dict[str, Any] = {"index": index, "url": data["url"], "not_carried_over": lost}
        if key in seen:
            match = next(t for t in existing if (t.url, t.method, t.body, tuple(t.printer_ids or ())) == key)
            result.update(status="already_imported", id=match.id, name=match.name)
        else:
            try:
                target = await service.create_target(herald, owner, data)
            except HeraldError as error:
                details = error.extra.get("details") if isinstance(error.extra, dict) else None
                result.update(status="not_imported", error=str(error), details=details or [])
            else:
                seen.add(key)
                result.update(status="created", id=target.id, name=target.name, enabled=target.enabled)
        results.append(result)
    return {"hooks": results,
            "created": sum(1 for r in results if r["status"] == "created"),
            "already_imported": sum(1 for r in results if r["status"] == "already_imported"),
            "not_imported": sum(1 for r in results if r["status"] == "not_imported")}
