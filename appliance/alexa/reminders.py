"""Alexa reminders: "Alexa, ask Herald to tell me when my print is done."

- ``RemindWhenDoneIntent`` sets a reminder (Reminders API, ``POST {apiEndpoint}/v1/alerts/reminders``
  with the request's ``apiAccessToken``): a ``SCHEDULED_ABSOLUTE`` trigger at the expected finish,
  in the Echo device's time zone, with the spoken text in the request's locale. Without the
  reminders permission (``alexa::alerts:reminders:skill:readwrite``) the answer says so and asks
  for it as Amazon describes: a ``Connections.SendRequest`` ``AskFor`` directive (voice consent)
  and an ``AskForPermissionsConsent`` card in the Alexa app. Amazon answers the directive with a
  ``Connections.Response``; when the user accepted, the reminder is set then.
- Herald keeps the reminder id (``alertToken``) with the user, printer and job. A status push whose
  expected finish moved by more than ``MOVED_BY`` asks for an update, a ``print.failed`` or
  ``print.cancelled`` event for a removal (a finished print leaves its reminder). Outside a session
  Herald has no ``apiAccessToken``: the background worker sends a Skill Messaging API message
  (``POST {apiEndpoint}/v1/skillmessages/users/{userId}``, Login with Amazon client-credentials
  token, scope ``alexa:skill_messaging``); Alexa then sends the skill a
  ``Messaging.MessageReceived`` request carrying a fresh ``apiAccessToken``, with which the skill
  updates (``PUT /v1/alerts/reminders/{alertToken}``) or deletes the reminder.

The state is durable and shared by every process (the reminder's row, see ``ReminderKeeper``):
a status reaching any process moves the reminder, and one process at a time works on a
reminder (a lease on its row). Every call has a short timeout; a status push only notes the
printer's newest status in memory for the worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
from tortoise.expressions import F, Q

from appliance.alexa import sql
from appliance.alexa.client import AmazonClient, claim_rows, work_rounds
from appliance.alexa.models import AlexaReminder
from appliance.alexa.notifications import AlexaNotifier, TokenRefused, token_refusal
from appliance.core.db import shielded
from appliance.core.herald import Herald
from appliance.core.leases import new_holder
from appliance.webhooks.retry import RetryPolicy
from skill import StaticSource
from skill import phrases as ph
from skill import status as st
from skill.names import match_printer

log = logging.getLogger(__name__)

INTENT = "RemindWhenDoneIntent"
PERMISSION = "alexa::alerts:reminders:skill:readwrite"
MESSAGING_SCOPE = "alexa:skill_messaging"
REMINDERS_PATH = "/v1/alerts/reminders"
MOVED_BY = timedelta(minutes=3)
MESSAGE_KIND = "herald.reminder"
MESSAGE_LIFETIME = 3600  # expiresAfterSeconds: Alexa keeps an undelivered message this long
AWAIT_MESSAGE = 600  # seconds to wait for Alexa's Messaging.MessageReceived before asking again
NOT_CONFIGURED_WAIT = 300
LEASE = timedelta(seconds=60)  # a process holds a reminder at most this long
LEASE_TRIES, LEASE_RETRY_WAIT = 50, 0.1  # a message waits up to 5 s for the sender's lease
POLL_EVERY = 2.0
MAX_PENDING_STATUSES = 10_000
RETRY = RetryPolicy(schedule=(5, 30, 120, 600, 1800), jitter=0.2)

SAY = {
    "en": {
        "set": "Okay. I'll remind you when {printer} is done, in about {left}.",
        "reminder": "{printer} has finished printing.",
        "permission": "To tell you when {printer} is done, Herald needs permission to set reminders. "
                      "I've sent a card to the Alexa app where you can allow it.",
        "not_printing": "{printer} is not printing, so there is nothing to remind you of.",
        "unknown": "Herald doesn't know when {printer} will finish yet. Ask again in a minute.",
        "which": "Several printers are printing. Say, for example: ask Herald to tell me when {example} is done.",
        "none": "None of your printers is printing right now.",
        "failed": "Sorry, Alexa would not set the reminder just now. Please try again later.",
        "denied": "Okay, no reminder. You can allow reminders for Herald in the Alexa app at any time.",
    },
    "de": {
        "set": "Alles klar. Ich erinnere dich, wenn {printer} fertig ist, in etwa {left}.",
        "reminder": "{printer} ist mit dem Druck fertig.",
        "permission": "Damit ich dir sagen kann, wann {printer} fertig ist, braucht Herald die Erlaubnis, "
                      "Erinnerungen zu setzen. Ich habe dir dazu eine Karte in der Alexa App geschickt.",
        "not_printing": "{printer} druckt gerade nicht, es gibt also nichts zu erinnern.",
        "unknown": "Herald weiß noch nicht, wann {printer} fertig wird. Frag in einer Minute noch einmal.",
        "which": "Mehrere Drucker drucken gerade. Sag zum Beispiel: frag Herald, sag mir, wenn {example} fertig ist.",
        "none": "Gerade druckt keiner deiner Drucker.",
        "failed": "Alexa konnte die Erinnerung gerade nicht setzen. Bitte versuch es später noch einmal.",
        "denied": "Gut, keine Erinnerung. Du kannst Herald Erinnerungen jederzeit in der Alexa App erlauben.",
    },
}


def _say(locale: str) -> dict[str, str]:
    return SAY["de" if locale.lower().startswith("de") else "en"]


def _system(envelope: dict[str, Any]) -> dict[str, Any]:
    return (envelope.get("context") or {}).get("System") or {}


def is_ours(envelope: dict[str, Any]) -> bool:
    """Requests this module answers instead of the skill: the intent, the answer to its
    permission request, and the skill messages it sent itself."""
    request = envelope.get("request") or {}
    kind = request.get("type")
    if kind == "IntentRequest":
        return (request.get("intent") or {}).get("name") == INTENT
    if kind == "Connections.Response":
        return request.get("name") == "AskFor" and str(request.get("token") or "").startswith("herald-remind:")
    return kind == "Messaging.MessageReceived"


def _speak(text: str, *, end: bool = True, directives: list[dict[str, Any]] | None = None,
           card: dict[str, Any] | None = None) -> dict[str, Any]:
    # text is SSML already: the phrases escape every name they put in (phrases.said_name, ssml)
    response: dict[str, Any] = {"outputSpeech": {"type": "SSML", "ssml": f"<speak>{text}</speak>"},
                                "shouldEndSession": end}
    if card:
        response["card"] = card
    if directives:
        response["directives"] = directives
    return {"version": "1.0", "response": response}


def _ask_permission(text: str, printer_id: str) -> dict[str, Any]:
    """Amazon's two ways to ask: voice consent (``Connections.SendRequest`` ``AskFor``, which
    ends the session) and the Alexa app's permissions card."""
    return _speak(text, card={"type": "AskForPermissionsConsent", "permissions": [PERMISSION]}, directives=[{
        "type": "Connections.SendRequest", "name": "AskFor",
        "payload": {"@type": "AskForPermissionsConsentRequest", "@version": "2",
                    "permissionScopes": [{"permissionScope": PERMISSION, "consentLevel": "ACCOUNT"}]},
        "token": f"herald-remind:{printer_id}",
    }])


def _printer_name(printer: dict[str, Any]) -> str:
    return ph.said_name(printer)


def reminder_body(*, finish_at: datetime, zone: str, locale: str, printer_name: str,
                  now: datetime) -> dict[str, Any]:
    """The Reminders API body: an absolute trigger in the device's zone (local time, no offset).

    Shape from the Reminders API reference's SCHEDULED_ABSOLUTE example: requestTime,
    trigger {type, scheduledTime (local, no offset), timeZoneId}, alertInfo.spokenInfo.content
    [{locale, text}], pushNotification {status: ENABLED}. The same body updates a reminder (PUT).
    """
    tz = ZoneInfo(zone)
    text = _say(locale)["reminder"].format(printer=printer_name)
    return {
        "requestTime": now.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S.000"),
        "trigger": {"type": "SCHEDULED_ABSOLUTE", "timeZoneId": zone,
                    "scheduledTime": finish_at.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S.000")},
        "alertInfo": {"spokenInfo": {"content": [{"locale": locale, "text": text}]}},
        "pushNotification": {"status": "ENABLED"},
    }


def expected_finish(printer: dict[str, Any], now: datetime) -> datetime | None:
    if st.condition(printer) != "printing":
        return None
    remaining = st.current_job(printer, now).remaining
    return None if remaining is None else now + timedelta(seconds=remaining)


class ReminderKeeper(AmazonClient):
    """Sets reminders in session, and keeps them in step out of session from whichever
    process hears of the change (the state is the reminder's row)."""

    def __init__(self, herald: Herald, *, timeout: float = 3.0, now: Callable[[], datetime] | None = None,
                 holder: str = "") -> None:
        super().__init__(timeout)
        self.herald = herald
        self._now = now or (lambda: datetime.now(UTC))
        self.holder = holder or new_holder()
        self._statuses: dict[str, dict[str, Any]] = {}  # printer id -> newest status view
        self._wake = asyncio.Event()
        self.messages_sent = 0
        self.lease_tries = LEASE_TRIES

    # ---- in session -------------------------------------------------------------------------

    async def answer(self, envelope: dict[str, Any], source: StaticSource | None) -> dict[str, Any]:
        request = envelope.get("request") or {}
        if request.get("type") == "Messaging.MessageReceived":
            await self.message_received(envelope)
            return {"version": "1.0", "response": {}}
        locale = str(request.get("locale") or "en-US")
        say = _say(locale)
        if source is None:
            return _speak(ph.for_locale(locale).link_account(), card={"type": "LinkAccount"})
        printers = source.printers()
        if request.get("type") == "Connections.Response":
            status = ((request.get("payload") or {}).get("status") or "").upper()
            if status != "ACCEPTED":
                return _speak(say["denied"])
            printer_id = str(request.get("token") or "").split(":", 1)[1]
            printer = next((p for p in printers if p.get("id") == printer_id), None)
            if printer is None:
                return _speak(say["none"])
            return await self._set(envelope, source, printer, locale)
        slot = (((request.get("intent") or {}).get("slots") or {}).get("printer") or {})
        asked = _slot_value(slot)
        if asked:
            printer = match_printer(asked, printers)
            if printer is None:
                return _speak(ph.for_locale(locale).unknown_printer(asked, printers))
        else:
            busy = [p for p in printers if st.condition(p) == "printing"]
            if not busy:
                return _speak(say["none"] if printers else ph.for_locale(locale).no_printers())
            if len(busy) > 1:
                return _speak(say["which"].format(example=_printer_name(busy[0])))
            printer = busy[0]
        return await self._set(envelope, source, printer, locale)

    async def _set(self, envelope: dict[str, Any], source: StaticSource, printer: dict[str, Any],
                   locale: str) -> dict[str, Any]:
        say, name, now = _say(locale), _printer_name(printer), source.now()
        if st.condition(printer) != "printing":
            return _speak(say["not_printing"].format(printer=name))
        finish = expected_finish(printer, now)
        if finish is None:
            return _speak(say["unknown"].format(printer=name))
        system = _system(envelope)
        token = str(system.get("apiAccessToken") or "")
        endpoint = str(system.get("apiEndpoint") or self.herald.settings.alexa_api_base).rstrip("/")
        scope = (((system.get("user") or {}).get("permissions") or {}).get("scopes") or {}).get(PERMISSION) or {}
        if not token or scope.get("status") == "DENIED":
            return _ask_permission(say["permission"].format(printer=name), printer["id"])
        zone = source.time_zone()
        body = reminder_body(finish_at=finish, zone=zone, locale=locale, printer_name=name, now=now)
        try:
            # Reminders API reference (developer.amazon.com/docs/smapi/alexa-reminders-api-reference.html):
            # POST {apiEndpoint}/v1/alerts/reminders, Authorization: Bearer {apiAccessToken} (an
            # in-session token: creating needs one), Content-Type: application/json; the answer
            # carries alertToken, createdTime, updatedTime, status, version, href. Amazon's SDK
            # (ask-sdk-model, ReminderManagementServiceClient) expects 200; 201 is taken too.
            # 401 means the user has not granted the reminders permission.
            async with self.session().post(f"{endpoint}{REMINDERS_PATH}", json=body, allow_redirects=False,
                                           headers={"Authorization": f"Bearer {token}"}) as response:
                if response.status in (401, 403):
                    return _ask_permission(say["permission"].format(printer=name), printer["id"])
                if response.status not in (200, 201):
                    log.warning("Alexa's Reminders API answered HTTP %s", response.status)
                    return _speak(say["failed"])
                alert_token = str((await response.json()).get("alertToken") or "")
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("Alexa's Reminders API did not answer: %r", exc)
            return _speak(say["failed"])
        alexa_user_id = str((system.get("user") or {}).get("userId") or "")
        if alert_token and alexa_user_id and source.user_id:
            job = str(((printer.get("status") or {}).get("job") or {}).get("file") or "")[:255]
            await shielded(AlexaReminder.create(
                user_id=source.user_id or 0, alexa_user_id=alexa_user_id[:512], api_endpoint=endpoint[:200],
                printer_id=printer["id"], job=job, alert_token=alert_token[:512], finish_at=finish,
                time_zone=zone, locale=locale, estimate_seen_at=st.parse_time(printer.get("last_seen"))))
        left = ph.for_locale(locale).duration((finish - now).total_seconds())
        return _speak(say["set"].format(printer=name, left=left))

    async def forget(self, envelope: dict[str, Any]) -> None:
        """The skill was disabled: the Amazon account's reminders are no longer Herald's to keep."""
        alexa_user_id = str((_system(envelope).get("user") or {}).get("userId") or "")
        await shielded(AlexaReminder.filter(alexa_user_id=alexa_user_id).delete())

    # ---- out of session ---------------------------------------------------------------------
    #
    # Every process may hear of a change (a status push, an event) and every process may get
    # Alexa's Messaging.MessageReceived, so the state lives in the reminder's row: a change
    # bumps ``revision``; the sender claims rows whose ``applied_revision`` lags (one UPDATE,
    # a lease on the row) and asks Alexa for a message; whoever gets the message takes the
    # row's lease, applies the row's newest wish and records the revision it applied.

    def on_status(self, printer_id: str, view: dict[str, Any]) -> None:
        """A status push (sync, on the push's path): remember the newest per printer; the worker
        compares them with the printers' reminders in the database every POLL_EVERY seconds
        (one query for all of them, however many pushes came: no query per push)."""
        if len(self._statuses) >= MAX_PENDING_STATUSES and printer_id not in self._statuses:
            return  # a flood of printers: the next push of each is looked at instead
        self._statuses[printer_id] = view

    async def on_event(self, event: Any, printer: Any, connection: Any) -> None:
        """``print.failed`` / ``print.cancelled`` mark the printer's reminders for removal (in the
        event's transaction); ``print.done`` leaves them with Alexa (she speaks it) and forgets them."""
        if event.type not in ("print.failed", "print.cancelled", "print.done"):
            return
        reminders = AlexaReminder.filter(printer_id=printer.id).using_db(connection)
        if event.type == "print.done":
            await reminders.delete()
            return
        if await reminders.update(remove=True, revision=F("revision") + 1, next_attempt_at=self._now(), attempts=0):
            self._wake.set()

    async def check_statuses(self) -> int:
        """Compare the newest statuses with the reminders set for those printers; a finish that
        moved by more than MOVED_BY asks for an update. Returns how many were asked for."""
        if not self._statuses:
            return 0
        statuses, self._statuses = self._statuses, {}
        now = self._now()
        wanted = 0
        rows = await AlexaReminder.filter(printer_id__in=list(statuses), remove=False).values(
            "id", "printer_id", "finish_at", "want_finish", "revision", "estimate_seen_at", "created_at")
        for row in rows:
            view = statuses[row["printer_id"]]
            seen = st.parse_time(view.get("last_seen"))
            behind = row["estimate_seen_at"] or row["created_at"]
            if seen is None or (behind is not None and seen < behind):
                # another process already acted on a newer push (pushes of one printer reach
                # several processes, and each looks at its own every POLL_EVERY seconds)
                continue
            finish = expected_finish(view, now)
            if finish is None:
                continue
            set_for = row["want_finish"] or row["finish_at"]
            if abs(finish - set_for) <= MOVED_BY:
                continue
            # only if nobody changed the wish since it was read: two processes hearing the same
            # news ask once
            wanted += await shielded(AlexaReminder.filter(id=row["id"], remove=False, revision=row["revision"]).update(
                want_finish=finish, estimate_seen_at=seen, revision=F("revision") + 1, next_attempt_at=now,
                attempts=0))
        return wanted

    async def run(self) -> None:
        await work_rounds("Alexa reminders", self.one_round, self._wake, POLL_EVERY)

    async def one_round(self) -> int:
        await self.check_statuses()
        return await self.send_due()

    async def send_due(self, limit: int = 10) -> int:
        """Claim reminders whose change Alexa lacks (one statement) and send each a skill message."""
        now = self._now()
        rows = await claim_rows(sql.claim_reminders(not self.herald.settings.is_sqlite),
                                [now + LEASE, self.holder, now, limit])
        for row in rows:
            await self._message(row)
        return len(rows)

    async def _message(self, row: dict[str, Any]) -> None:
        mine = AlexaReminder.filter(id=row["id"], locked_by=self.holder)
        notifier = self.herald.part(AlexaNotifier)
        if not notifier.configured:
            log.info("Alexa reminder not kept in step: the skill's client id and secret are not set")
            await shielded(mine.update(locked_until=None, locked_by=None, last_error="no client credentials",
                                       next_attempt_at=self._now() + timedelta(seconds=NOT_CONFIGURED_WAIT)))
            return
        status = 0
        try:
            lwa = await notifier.access_token(MESSAGING_SCOPE)
            data = {"kind": MESSAGE_KIND, "reminder": row["id"], "revision": row["revision"]}
            url = f"{row['api_endpoint'].rstrip('/')}/v1/skillmessages/users/{quote(row['alexa_user_id'], safe='')}"
            # Skill Messaging API reference (developer.amazon.com/docs/smapi/skill-messaging-api-reference.html):
            # POST {api host}/v1/skillmessages/users/{userId}, Authorization: Bearer <LWA token of
            # scope alexa:skill_messaging>, body {"data": {...}, "expiresAfterSeconds": n}; 202 Accepted.
            async with self.session().post(url, json={"data": data, "expiresAfterSeconds": MESSAGE_LIFETIME},
                                           allow_redirects=False,
                                           headers={"Authorization": f"Bearer {lwa}"}) as response:
                status = response.status
                # Amazon's SDK error table: 403 "the skill messaging authentication token is
                # expired or not valid"; a 401 is taken the same way.
                if status in (401, 403):
                    notifier.forget_token(MESSAGING_SCOPE)
                error = f"Skill Messaging API answered HTTP {status}"
        except TokenRefused as exc:
            error = str(exc)
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
            error = f"no answer: {exc!r}"
        now = self._now()
        if status == 202:
            self.messages_sent += 1
            # Alexa delivers the message soon; if it never comes, ask again after a while.
            await shielded(mine.update(locked_until=None, locked_by=None, last_error="",
                                       next_attempt_at=now + timedelta(seconds=AWAIT_MESSAGE)))
            return
        attempt = int(row["attempts"])
        delay = RETRY.next_delay(min(attempt, len(RETRY.schedule)), random.random()) or RETRY.schedule[-1]
        if status in (401, 403) and not token_refusal(row.get("last_error")):
            delay = 0.0  # once at once, with a fresh token
        log.warning("Alexa reminder %s: %s; asking again in %.0f s", row["id"], error, delay)
        await shielded(mine.update(locked_until=None, locked_by=None, last_error=error[:255],
                                   next_attempt_at=now + timedelta(seconds=delay)))

    async def _lease(self, reminder_id: int) -> bool:
        """Take the reminder's lease (one conditional UPDATE), waiting a little for a holder that is
        just sending its message; False when it stays taken."""
        for _ in range(self.lease_tries):
            now = self._now()
            free = Q(locked_until__isnull=True) | Q(locked_until__lte=now) | Q(locked_by=self.holder)
            if await shielded(AlexaReminder.filter(Q(id=reminder_id), free).update(
                    locked_by=self.holder, locked_until=now + LEASE)):
                return True
            await asyncio.sleep(LEASE_RETRY_WAIT)
        return False

    async def message_received(self, envelope: dict[str, Any]) -> None:
        """``Messaging.MessageReceived``: bring Alexa's reminder up to the row's newest wish with
        the fresh token. Alexa may deliver a message twice, or late: the revision says."""
        system = _system(envelope)
        message = (envelope.get("request") or {}).get("message") or {}
        if message.get("kind") != MESSAGE_KIND:
            return
        alexa_user_id = str((system.get("user") or {}).get("userId") or "")
        token = str(system.get("apiAccessToken") or "")
        try:
            reminder_id = int(message.get("reminder") or 0)
        except (TypeError, ValueError):
            return
        if not token or not await AlexaReminder.exists(id=reminder_id, alexa_user_id=alexa_user_id):
            return
        if not await self._lease(reminder_id):
            log.info("Alexa reminder %s is being changed elsewhere; this message is left", reminder_id)
            return
        mine = AlexaReminder.filter(id=reminder_id, locked_by=self.holder)
        try:
            reminder = await AlexaReminder.get_or_none(id=reminder_id)
            if reminder is None or reminder.applied_revision >= reminder.revision:
                return  # a repeated message, or one already applied
            await self._apply(reminder, system, token, mine)
        finally:
            await shielded(AlexaReminder.filter(id=reminder_id, locked_by=self.holder).update(
                locked_by=None, locked_until=None))

    async def _apply(self, reminder: AlexaReminder, system: dict[str, Any], token: str, mine: Any) -> None:
        endpoint = str(system.get("apiEndpoint") or reminder.api_endpoint).rstrip("/")
        url = f"{endpoint}{REMINDERS_PATH}/{quote(reminder.alert_token, safe='')}"
        headers = {"Authorization": f"Bearer {token}"}
        now = self._now()
        try:
            if reminder.remove:
                # Reminders API reference: DELETE /v1/alerts/reminders/{alertToken}; 200 OK.
                async with self.session().delete(url, headers=headers, allow_redirects=False) as response:
                    status = response.status
                if status in (200, 204, 404):
                    await shielded(mine.delete())
                    return
            else:
                finish = reminder.want_finish or reminder.finish_at
                printer = await reminder.printer
                name = ph.spoken_name(printer.spoken_name or printer.name)
                body = reminder_body(finish_at=finish, zone=reminder.time_zone, locale=reminder.locale,
                                     printer_name=name, now=now)
                # Reminders API reference: PUT /v1/alerts/reminders/{alertToken} with the whole
                # reminder (as for create); 200 OK; 404 when the user deleted it in the Alexa app.
                async with self.session().put(url, json=body, headers=headers, allow_redirects=False) as response:
                    status = response.status
                if status == 404:
                    await shielded(mine.delete())
                    return
                if status == 200:
                    await shielded(mine.filter(revision=reminder.revision).update(
                        finish_at=finish, applied_revision=reminder.revision, attempts=0, last_error=""))
                    # a change wanted meanwhile (another revision) is still due: the sender sees it
                    await shielded(mine.filter(revision__gt=reminder.revision).update(next_attempt_at=now))
                    self._wake.set()
                    return
            error = f"Reminders API answered HTTP {status}"
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            error = f"no answer: {exc!r}"
        log.warning("Alexa reminder %s change failed: %s", reminder.id, error)
        delay = RETRY.next_delay(min(max(reminder.attempts, 1), len(RETRY.schedule)), random.random())
        await shielded(mine.update(last_error=error[:255], next_attempt_at=now + timedelta(seconds=delay or 60)))


def _slot_value(slot: dict[str, Any]) -> str | None:
    for authority in ((slot.get("resolutions") or {}).get("resolutionsPerAuthority") or []):
        if ((authority.get("status") or {}).get("code") == "ER_SUCCESS_MATCH") and authority.get("values"):
            return str(authority["values"][0]["value"]["name"])
    return slot.get("value") or None
