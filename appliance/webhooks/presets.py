"""The webhook presets a user starts from: OctoPrint-Webhooks' default body and common receivers."""

from __future__ import annotations

import json
from typing import Any

# OctoPrint-Webhooks' shipped default (its settings defaults): with "@snapshot" in it, the
# request is multipart/form-data, as its receivers expect.
OCTOPRINT_WEBHOOKS_BODY = {
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
    "meta": "@meta",
    "currentTime": "@currentTime",
    "snapshot": "@snapshot",
}
OCTOPRINT_WEBHOOKS_HEADERS = {"Content-Type": "application/json"}
# Its fields without the snapshot (so JSON with native types), plus Herald's own.
_STANDARD_BODY = {**{k: v for k, v in OCTOPRINT_WEBHOOKS_BODY.items() if k not in ("meta", "snapshot")},
                  "printer": "@printer", "sequence": "@sequence"}


def _pretty(value: dict) -> str:
    return json.dumps(value, indent=2)


PRESETS: dict[str, dict[str, Any]] = {
    "octoprint_webhooks": {
        "label": "OctoPrint-Webhooks default (multipart with snapshot)",
        "url": "https://",
        "method": "POST",
        "content_type": "json",
        "headers": _pretty(OCTOPRINT_WEBHOOKS_HEADERS),
        "body": _pretty(OCTOPRINT_WEBHOOKS_BODY),
        "help": "Exactly what OctoPrint-Webhooks sends by default: because the body uses @snapshot, "
                "it is multipart/form-data, objects as JSON text, with or without a picture.",
    },
    "blank": {
        "label": "Blank (OctoPrint-Webhooks' fields as JSON, plus Herald's)",
        "url": "https://",
        "method": "POST",
        "content_type": "json",
        "headers": "{}",
        "body": _pretty(_STANDARD_BODY),
        "help": "OctoPrint-Webhooks' fields (without the snapshot, so JSON with native types) and "
                "Herald's printer and sequence; change it freely.",
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
# Parts of the presets the user must replace: saving a webhook that still has one is refused.
PLACEHOLDERS: dict[str, str] = {
    "YOUR_WEBHOOK_ID": "the id from your Home Assistant webhook trigger",
    "YOUR_TOPIC": "your ntfy topic",
    "ntfy.example.com": "your ntfy server (ntfy.sh or your own)",
    "/ID/TOKEN": "the webhook URL Discord shows",
    "/T000/B000/XXXX": "the webhook URL Slack shows",
}


def placeholder_in(text: str) -> str | None:
    """The first preset placeholder still in ``text`` with what to put instead, or None."""
    for placeholder, instead in PLACEHOLDERS.items():
        if placeholder in text:
            return f"still has the preset's placeholder {placeholder.strip('/')}: replace it with {instead}"
    return None


DEFAULT_EVENTS = ["print.started", "print.done", "print.failed", "print.cancelled", "print.paused",
                  "printer.user_action_needed", "printer.error"]
