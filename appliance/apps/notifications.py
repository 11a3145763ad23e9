"""An App Connection's notification webhook: set, delete, test, expire -- on Herald's durable webhook queue.

The registration is a webhook target owned by the connection's user and limited to the
connection's printer, so the queue's outbound-address rules, retries and signing apply as to
any other webhook. It expires 180 days after it was last set.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from appliance.accounts.models import User
from appliance.apps.models import AppConnection
from appliance.core.db import shielded
from appliance.core.errors import HeraldError, Invalid, NotFound, Unprocessable
from appliance.core.herald import Herald
from appliance.printers.event_types import APP_EVENT_NUMBERS, APP_TEST_EVENT_NUMBER
from appliance.webhooks import enqueue
from appliance.webhooks.delivery import DeliveryWorker
from appliance.webhooks.models import Delivery, WebhookTarget
from appliance.webhooks.targets import create_target, update_target

log = logging.getLogger(__name__)

REGISTRATION_DAYS = 180
PROGRESS_STEP = 10  # percent between progress notifications (event 6)
KNOWN_NUMBERS = tuple(sorted(APP_EVENT_NUMBERS)) + (APP_TEST_EVENT_NUMBER,)
PRESET = "appconnection"


def body_template(connection: AppConnection) -> str:
    """What each notification posts (JSON): OctoEverywhere-style names, values from the event."""
    return json.dumps({
        "EventType": "@eventNumber",
        "HeraldEvent": "@event",
        "AppConnectionId": connection.id,
        "PrinterId": "@printer.id",
        "PrinterName": "@printer.name",
        "Message": "@message",
        "FileName": "@job.file.name",
        "Progress": "@progress.completion",
        "TimeRemainingSec": "@progress.printTimeLeft",
        "OccurredAt": "@occurredAt",
        "EventId": "@eventId",
    }, indent=2)


def event_types_for(numbers: Any) -> list[str]:
    """Herald event types for an InclusiveEventTypesFilter (absent or empty: every event)."""
    if numbers is None or numbers == []:
        numbers = list(APP_EVENT_NUMBERS)
    if not isinstance(numbers, list) or any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
        raise Invalid("InclusiveEventTypesFilter must be a list of event numbers.", field="InclusiveEventTypesFilter")
    unknown = [n for n in numbers if n not in KNOWN_NUMBERS]
    if unknown:
        raise Invalid(f"InclusiveEventTypesFilter: {unknown[0]} is not an event number Herald sends; "
                      f"use {', '.join(str(n) for n in KNOWN_NUMBERS)}.", field="InclusiveEventTypesFilter")
    types: list[str] = []
    for number in numbers:
        types.extend(t for t in APP_EVENT_NUMBERS.get(number, ()) if t not in types)
    return types


async def _owner(connection: AppConnection) -> User:
    user = await User.get_or_none(id=connection.user_id)
    if user is None:
        raise NotFound("No such App Connection.")
    return user


async def set_webhook(herald: Herald, connection: AppConnection, url: Any, numbers: Any) -> AppConnection:
    if not isinstance(url, str) or not url.strip():
        raise Invalid("WebhookUrl is required: the address Herald posts notifications to.", field="WebhookUrl")
    events = event_types_for(numbers)
    owner = await _owner(connection)
    data = {"name": f"{connection.app_name} notifications ({connection.printer_name})"[:100],
            "preset": PRESET, "url": url.strip(), "method": "POST", "content_type": "json",
            "events": events, "printer_ids": [connection.printer_id], "progress_step": PROGRESS_STEP,
            "headers": "{}", "body": body_template(connection), "enabled": True}
    try:
        target = await WebhookTarget.get_or_none(id=connection.webhook_target_id) if connection.webhook_target_id else None
        if target is None:
            target = await create_target(herald, owner, data)
        else:
            target = await update_target(herald, owner, target, data)
    except HeraldError as exc:
        # the webhook rules speak of "url"; the app sent WebhookUrl
        message = exc.message.replace("url: ", "WebhookUrl: ", 1)
        raise Unprocessable(message, code=exc.code, field="WebhookUrl") from None
    connection.webhook_target_id = target.id
    connection.webhook_expires_at = herald.clock.now() + timedelta(days=REGISTRATION_DAYS)
    await shielded(connection.save(update_fields=["webhook_target_id", "webhook_expires_at"]))
    return connection


async def signing_secret(herald: Herald, connection: AppConnection) -> str | None:
    target = await WebhookTarget.get_or_none(id=connection.webhook_target_id) if connection.webhook_target_id else None
    return herald.secret_box.decrypt(target.signing_secret) if target else None


async def delete_webhook(connection: AppConnection) -> bool:
    """Forget the registration; True when there was one."""
    target_id = connection.webhook_target_id
    connection.webhook_target_id = None
    connection.webhook_expires_at = None
    await shielded(connection.save(update_fields=["webhook_target_id", "webhook_expires_at"]))
    if target_id:
        await shielded(WebhookTarget.filter(id=target_id).delete())
        return True
    return False


async def test_webhook(herald: Herald, connection: AppConnection) -> Delivery:
    """Queue a test notification (EventType 16) to the registered webhook."""
    target = await WebhookTarget.get_or_none(id=connection.webhook_target_id) if connection.webhook_target_id else None
    if target is None:
        raise NotFound("No notification webhook is set for this App Connection; call SetNotificationWebhook first.",
                       code="webhook_not_set")
    owner = await _owner(connection)
    worker = herald.part_or_none(DeliveryWorker)
    return await enqueue.enqueue_test(herald, owner, target, "print.done", printer_id=connection.printer_id,
                                      notify=worker.notify if worker else None)


async def expire_webhooks(herald: Herald) -> int:
    """Housekeeping: registrations not set again within 180 days end."""
    now = herald.clock.now()
    expired = await AppConnection.filter(webhook_expires_at__lte=now)
    for connection in expired:
        await delete_webhook(connection)
    if expired:
        log.info("%d App Connection notification webhook(s) expired", len(expired))
    return len(expired)
