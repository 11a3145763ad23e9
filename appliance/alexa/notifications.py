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

Durable, like webhooks: each notification is a row (``alexa_notifications``) written in the
event's transaction, claimed in one statement by whichever process is free, and tried again
with backoff on timeouts, 5xx and 429 (after its Retry-After), with a fresh token after a 401;
other 4xx answers are final. A notification still unsent when it would expire is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from appliance.accounts.models import User
from appliance.alexa import sql
from appliance.alexa.client import AmazonClient, claim_rows, work_rounds
from appliance.alexa.models import AlexaAccount, AlexaNotification
from appliance.core.db import shielded
from appliance.core.herald import Herald
from appliance.core.leases import new_holder
from appliance.webhooks.retry import RetryPolicy, retry_after_seconds

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
    """The Proactive Events request body: Alexa says "one new message from Prusa: print done".

    Shapes from the Proactive Events API reference (timestamp, referenceId, expiryTime, event,
    relevantAudience {type: Unicast, payload {user: userId}}) and the Proactive Events Schemas
    page, AMAZON.MessageAlert.Activated: state {status UNREAD|FLAGGED, freshness NEW|OVERDUE},
    messageGroup {creator {name}, count, urgency URGENT}. No localizedAttributes: this schema
    has no localized field.
    """
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


# Amazon's schedule is unknown; these retries fit well inside EXPIRES_AFTER.
RETRY = RetryPolicy(schedule=(5, 30, 120, 600, 1800, 3600), jitter=0.2)
LEASE = timedelta(seconds=60)  # a claim a stopped process leaves expires after this
POLL_EVERY = 2.0  # seconds between looks for due notifications, besides being woken
KEEP_FOR = timedelta(days=7)  # a finished notification's row is kept this long (for diagnosis)


class TokenRefused(Exception):
    """Login with Amazon answered with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"Login with Amazon answered HTTP {status}")
        self.status = status


class AlexaNotifier(AmazonClient):
    """The event listener that stores notifications (a row per event and account, in the
    event's transaction), and the worker that claims and sends them, retrying with backoff."""

    def __init__(self, herald: Herald, *, timeout: float = 10.0, now: Callable[[], datetime] | None = None,
                 holder: str = "", policy: RetryPolicy = RETRY) -> None:
        super().__init__(timeout)
        self.herald = herald
        self._now = now or (lambda: datetime.now(UTC))
        self.holder = holder or new_holder()
        self.policy = policy
        self.known: dict[str, tuple[int, str]] = {}
        self._tokens: dict[str, tuple[str, datetime]] = {}  # LWA scope -> (token, good until)
        self._wake = asyncio.Event()
        self.sent = 0

    @property
    def configured(self) -> bool:
        settings = self.herald.settings
        return bool(settings.alexa_client_id and settings.alexa_client_secret)

    def notify(self) -> None:
        self._wake.set()

    async def on_event(self, event: Any, printer: Any, connection: Any) -> None:
        what = NOTIFIED.get(event.type)
        if what is None or not self.configured:
            return
        accounts = await AlexaAccount.filter(user_id=printer.owner_id, notify=True, subscribed=True).using_db(
            connection)
        name = printer.spoken_name or printer.name
        now = self._now()
        for account in accounts:
            # One referenceId per event and account: Amazon's key for this notification, and
            # Herald's, so an event stored twice never notifies twice.
            # Amazon allows only letters, digits and "~" in a referenceId, 1-100 of them
            # (ask-sdk-model's CreateProactiveEventRequest, from Amazon's API definition).
            reference = f"herald~{event.id}~{account.id}"
            if await AlexaNotification.filter(reference_id=reference).using_db(connection).exists():
                continue
            body = message_alert(printer_name=name, what=what, alexa_user_id=account.alexa_user_id,
                                 reference=reference, now=now)
            await AlexaNotification.create(
                account_id=account.id, reference_id=reference, body=body, next_attempt_at=now,
                api_endpoint=account.api_endpoint or self.herald.settings.alexa_api_base,
                expires_at=now + EXPIRES_AFTER, using_db=connection)
        if accounts:
            self.notify()

    async def recover(self) -> int:
        """At start on SQLite (one process): a notification left in flight was this server's
        before it stopped, so it is due again now rather than when its lease ends."""
        if not self.herald.settings.is_sqlite:
            return 0  # other processes may be sending theirs: their leases say when
        return await shielded(AlexaNotification.filter(status="in_flight").update(
            status="pending", locked_until=None, claimed_by=None, next_attempt_at=self._now()))

    async def run(self) -> None:
        await work_rounds("Alexa notifications", self.work_once, self._wake, POLL_EVERY)

    async def work_once(self, limit: int = 10) -> int:
        """Claim due notifications in one statement, send each and record the outcome."""
        now = self._now()
        rows = await claim_rows(sql.claim_notifications(not self.herald.settings.is_sqlite),
                                [now + LEASE, self.holder, now, limit])
        for row in rows:
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: dict[str, Any]) -> None:
        mine = AlexaNotification.filter(id=row["id"], claimed_by=self.holder, status="in_flight")
        now = self._now()
        if now >= _aware(row["expires_at"]):
            await shielded(mine.update(status="failed", locked_until=None, last_error="expired before Alexa took it"))
            return
        body = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"])
        attempt = int(row["attempts"])
        try:
            status, retry_after = await self.send(row["api_endpoint"], body)
        except TokenRefused as exc:
            status, retry_after, error = exc.status, None, str(exc)
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
            status, retry_after, error = 0, None, f"no answer: {exc!r}"[:255]
        else:
            error = f"Proactive Events API answered HTTP {status}"
        if status == 409:
            # 409: Alexa already has an event with this referenceId for this user, from an
            # earlier try whose answer was lost. It is delivered.
            error = "Alexa already had it (HTTP 409)"
        if status in (202, 409):
            self.sent += status == 202
            await shielded(mine.update(status="delivered", locked_until=None, delivered_at=now, last_error=""))
            return
        delay = _retry_delay(status, retry_after, attempt, self.policy,
                             token_refused_before=token_refusal(row.get("last_error")))
        if delay is None:
            log.warning("Alexa notification %s not sent: %s", row["id"], error)
            await shielded(mine.update(status="failed", locked_until=None, last_error=error[:255]))
            return
        log.info("Alexa notification %s: %s; trying again in %.0f s", row["id"], error, delay)
        await shielded(mine.update(status="pending", locked_until=None, last_error=error[:255],
                                   next_attempt_at=now + timedelta(seconds=delay)))

    async def send(self, endpoint: str, body: dict[str, Any]) -> tuple[int, str | None]:
        """Post one event; (HTTP status, Retry-After). A 401 drops the kept token, so the next
        try asks Login with Amazon for a fresh one."""
        token = await self.access_token(SCOPE)
        # Proactive Events API reference (developer.amazon.com/docs/smapi/proactive-events-api-reference.html):
        # POST {api host}/v1/proactiveEvents/stages/development, Authorization: Bearer <LWA token
        # of scope alexa::proactive_events>, Content-Type: application/json; 202 Accepted.
        async with self.session().post(f"{endpoint.rstrip('/')}{STAGE_PATH}", json=body, headers={
                "Authorization": f"Bearer {token}"}, allow_redirects=False) as response:
            # 401, and 403 ("the authentication token is invalid", as Amazon's reference and its
            # SDK's error table put it): the token kept may be stale, so the next try gets a new one.
            if response.status in (401, 403):
                self._tokens.pop(SCOPE, None)
            return response.status, response.headers.get("Retry-After")

    async def access_token(self, scope: str = SCOPE) -> str:
        """A Login with Amazon client-credentials token for ``scope`` (kept until shortly before it
        expires): ``alexa::proactive_events`` here, ``alexa:skill_messaging`` for reminders."""
        now = self._now()
        kept = self._tokens.get(scope)
        if kept is not None and now < kept[1]:
            return kept[0]
        settings = self.herald.settings
        # "Configure an Application or Service to Send Messages to Your Skill" and the Proactive
        # Events reference: POST https://api.amazon.com/auth/o2/token, a form body
        # (application/x-www-form-urlencoded) with grant_type=client_credentials, client_id,
        # client_secret and scope; 200 with access_token, expires_in, scope, token_type.
        async with self.session().post(settings.alexa_token_url, data={
                "grant_type": "client_credentials", "client_id": settings.alexa_client_id,
                "client_secret": settings.alexa_client_secret, "scope": scope}, allow_redirects=False) as response:
            if response.status != 200:
                raise TokenRefused(response.status)
            answer = await response.json()
        token, seconds = str(answer["access_token"]), int(answer.get("expires_in") or 3600)
        self._tokens[scope] = (token, now + timedelta(seconds=max(0, seconds - 60)))
        return token

    def forget_token(self, scope: str) -> None:
        self._tokens.pop(scope, None)


async def purge_notifications(herald: Herald) -> int:
    """Forget notifications that are done with (delivered or given up) after ``KEEP_FOR``."""
    return await shielded(AlexaNotification.filter(
        status__in=("delivered", "failed"), created_at__lt=herald.clock.now() - KEEP_FOR).delete())


def token_refusal(error: str | None) -> bool:
    """Whether the last try's error was Amazon refusing the token (401 or 403)."""
    return bool(error) and str(error).endswith(("HTTP 401", "HTTP 403"))


def _retry_delay(status: int, retry_after: str | None, attempt: int, policy: RetryPolicy, *,
                 token_refused_before: bool = False) -> float | None:
    """Seconds before the next try, or None to give up: no answer (0), 5xx, 401 and 429 (after
    its Retry-After) are tried again on the policy's schedule; a 401 or 403 after a try that
    was not refused for its token is tried again at once, with a fresh token; a 403 with a
    fresh token and every other 4xx are final."""
    if status in (401, 403) and not token_refused_before:
        return 0.0 if policy.next_delay(attempt) is not None else None
    if 400 <= status < 500 and status not in (401, 429):
        return None
    delay = policy.next_delay(attempt, random.random())
    if delay is None:
        return None
    if status == 429:
        asked = retry_after_seconds(retry_after, datetime.now(UTC))
        if asked is not None:
            return max(asked, 1.0)
    return delay


def _aware(moment: Any) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
