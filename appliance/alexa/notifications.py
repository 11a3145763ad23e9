"""Alexa notifications (Proactive Events API): print done, failed and needs-attention, per
linked user who turned them on in Herald and allowed them in the Alexa app.

- Each answered request remembers the Amazon account (``context.System.user.userId``) as the
  Herald user it was answered for, with its ``apiEndpoint`` (the region's API address).
- ``AlexaSkillEvent.ProactiveSubscriptionChanged`` says whether the user allows
  ``AMAZON.MessageAlert.Activated`` notifications (Alexa app, skill settings).
- A stored event of those kinds queues one notification per such account; a worker gets a
  token from Login with Amazon (client credentials, scope ``alexa::proactive_events``, kept
  until shortly before it expires) and posts ``AMAZON.MessageAlert.Activated`` to
  ``{apiEndpoint}/v1/proactiveEvents/stages/development``: the development stage, which a
  private skill that is never certified uses.

Best effort, unlike webhooks: a notification that fails is logged, not retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from appliance.accounts.models import User
from appliance.alexa.client import AmazonClient
from appliance.alexa.models import AlexaAccount
from appliance.core.db import shielded
from appliance.core.herald import Herald

log = logging.getLogger(__name__)

SCHEMA = "AMAZON.MessageAlert.Activated"
SCOPE = "alexa::proactive_events"
STAGE_PATH = "/v1/proactiveEvents/stages/development"
# event type -> what the notification says after the printer's name (Alexa: "one new message from ...")
NOTIFIED = {"print.done": "print done", "print.failed": "print failed",
            "printer.user_action_needed": "needs you"}
EXPIRES_AFTER = timedelta(hours=6)


def _system(envelope: dict[str, Any]) -> dict[str, Any]:
    return (envelope.get("context") or {}).get("System") or {}


async def remember_account(herald: Herald, user_id: int, envelope: dict[str, Any]) -> None:
    """Keep the Amazon account a request came from as ``user_id``'s (once per process and change)."""
    system = _system(envelope)
    alexa_user_id = str((system.get("user") or {}).get("userId") or "")
    endpoint = str(system.get("apiEndpoint") or "").rstrip("/")
    if not alexa_user_id or not endpoint or len(alexa_user_id) > 512 or len(endpoint) > 200:
        return
    notifier = herald.part(AlexaNotifier)
    if notifier.known.get(alexa_user_id) == (user_id, endpoint):
        return
    updated = await shielded(AlexaAccount.filter(alexa_user_id=alexa_user_id).update(
        user_id=user_id, api_endpoint=endpoint))
    if not updated:
        await shielded(AlexaAccount.get_or_create(alexa_user_id=alexa_user_id, defaults={
            "user_id": user_id, "api_endpoint": endpoint}))
    notifier.known[alexa_user_id] = (user_id, endpoint)


async def subscription_changed(envelope: dict[str, Any]) -> None:
    """``AlexaSkillEvent.ProactiveSubscriptionChanged``: the user allowed or withdrew notifications."""
    alexa_user_id = str((_system(envelope).get("user") or {}).get("userId") or "")
    body = (envelope.get("request") or {}).get("body") or {}
    subscribed = any(isinstance(s, dict) and s.get("eventName") == SCHEMA for s in body.get("subscriptions") or [])
    await shielded(AlexaAccount.filter(alexa_user_id=alexa_user_id).update(subscribed=subscribed))


async def forget_account(herald: Herald, envelope: dict[str, Any]) -> None:
    """The skill was disabled: Amazon's user id for it is gone, and so is everything Herald kept."""
    alexa_user_id = str((_system(envelope).get("user") or {}).get("userId") or "")
    herald.part(AlexaNotifier).known.pop(alexa_user_id, None)
    await shielded(AlexaAccount.filter(alexa_user_id=alexa_user_id).delete())


async def notification_settings(user: User) -> dict[str, Any]:
    accounts = await AlexaAccount.filter(user_id=user.id)
    return {"accounts": len(accounts), "notify": any(a.notify for a in accounts),
            "subscribed": sum(1 for a in accounts if a.subscribed)}


async def set_notifications(user: User, on: bool) -> None:
    """The user's opt-in, for every Amazon account they use Herald's skill with."""
    await shielded(AlexaAccount.filter(user_id=user.id).update(notify=on))


def message_alert(*, printer_name: str, what: str, alexa_user_id: str, reference: str,
                  now: datetime) -> dict[str, Any]:
    """The Proactive Events request body: Alexa says "one new message from Prusa: print done"."""
    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return {
        "timestamp": stamp(now),
        "referenceId": reference,
        "expiryTime": stamp(now + EXPIRES_AFTER),
        "event": {"name": SCHEMA, "payload": {
            "state": {"status": "UNREAD", "freshness": "NEW"},
            "messageGroup": {"creator": {"name": f"{printer_name}: {what}"[:100]}, "count": 1,
                             "urgency": "URGENT"},
        }},
        "relevantAudience": {"type": "Unicast", "payload": {"user": alexa_user_id}},
    }


class AlexaNotifier(AmazonClient):
    """The event listener that queues notifications, and the worker that sends them."""

    def __init__(self, herald: Herald, *, timeout: float = 10.0, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(timeout)
        self.herald = herald
        self._now = now or (lambda: datetime.now(UTC))
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=1000)
        self.known: dict[str, tuple[int, str]] = {}
        self._tokens: dict[str, tuple[str, datetime]] = {}  # LWA scope -> (token, good until)
        self.sent = 0

    @property
    def configured(self) -> bool:
        settings = self.herald.settings
        return bool(settings.alexa_client_id and settings.alexa_client_secret)

    async def on_event(self, event: Any, printer: Any, connection: Any) -> None:
        what = NOTIFIED.get(event.type)
        if what is None or not self.configured:
            return
        accounts = await AlexaAccount.filter(user_id=printer.owner_id, notify=True, subscribed=True).using_db(
            connection)
        name = printer.spoken_name or printer.name
        for account in accounts:
            body = message_alert(printer_name=name, what=what, alexa_user_id=account.alexa_user_id,
                                 reference=f"herald-{event.id}-{account.id}", now=self._now())
            try:
                self.queue.put_nowait((account.api_endpoint or self.herald.settings.alexa_api_base, body))
            except asyncio.QueueFull:
                log.warning("Alexa notification queue is full: one notification dropped")

    async def run(self) -> None:
        while True:
            endpoint, body = await self.queue.get()
            try:
                await self.send(endpoint, body)
            except Exception:  # one failed notification must not stop the others
                log.exception("Alexa notification failed")
            finally:
                self.queue.task_done()

    async def send(self, endpoint: str, body: dict[str, Any]) -> None:
        token = await self._access_token()
        async with self.session().post(f"{endpoint.rstrip('/')}{STAGE_PATH}", json=body, headers={
                "Authorization": f"Bearer {token}"}, allow_redirects=False) as response:
            if response.status == 401:
                self._tokens.pop(SCOPE, None)
            if response.status != 202:
                log.warning("Alexa's Proactive Events API answered HTTP %s", response.status)
                return
        self.sent += 1

    async def _access_token(self, scope: str = SCOPE) -> str:
        """A Login with Amazon client-credentials token for ``scope`` (kept until shortly before it
        expires): ``alexa::proactive_events`` here, ``alexa:skill_messaging`` for reminders."""
        now = self._now()
        kept = self._tokens.get(scope)
        if kept is not None and now < kept[1]:
            return kept[0]
        settings = self.herald.settings
        async with self.session().post(settings.alexa_token_url, data={
                "grant_type": "client_credentials", "client_id": settings.alexa_client_id,
                "client_secret": settings.alexa_client_secret, "scope": scope}, allow_redirects=False) as response:
            if response.status != 200:
                raise aiohttp.ClientError(f"Login with Amazon answered HTTP {response.status}")
            answer = await response.json()
        token, seconds = str(answer["access_token"]), int(answer.get("expires_in") or 3600)
        self._tokens[scope] = (token, now + timedelta(seconds=max(0, seconds - 60)))
        return token
