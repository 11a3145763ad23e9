"""Alexa reminders: "Alexa, ask Herald to tell me when my print is done."

- ``RemindWhenDoneIntent`` sets a reminder (Reminders API, ``POST {apiEndpoint}/v1/alerts/reminders``
  with the request's ``apiAccessToken``): a ``SCHEDULED_ABSOLUTE`` trigger at the expected finish,
  in the Echo device's time zone, with the spoken text in the request's locale. Without the
  reminders permission (``alexa::alerts:reminders:skill:readwrite``) the answer says so and asks
  for it as Amazon describes: a ``Connections.SendRequest`` ``AskFor`` directive (voice consent)
  and an ``AskForPermissionsConsent`` card in the Alexa app. Amazon answers the directive with a
  ``Connections.Response``; when the user accepted, the reminder is set then.
- Herald keeps the reminder id (``alertToken``) with the user, printer and job. A status push whose
  expected finish moved by more than ``MOVED_BY`` queues an update, a ``print.failed`` or
  ``print.cancelled`` event a removal (a finished print leaves its reminder). Outside a session
  Herald has no ``apiAccessToken``: the background worker sends a Skill Messaging API message
  (``POST {apiEndpoint}/v1/skillmessages/users/{userId}``, Login with Amazon client-credentials
  token, scope ``alexa:skill_messaging``); Alexa then sends the skill a
  ``Messaging.MessageReceived`` request carrying a fresh ``apiAccessToken``, with which the skill
  updates (``PUT /v1/alerts/reminders/{alertToken}``) or deletes the reminder.

Every call has a short timeout; status pushes only put work on a bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp

from appliance.alexa.client import AmazonClient
from appliance.alexa.models import AlexaReminder
from appliance.alexa.notifications import AlexaNotifier
from appliance.core.db import shielded
from appliance.core.herald import Herald
from skill import StaticSource
from skill import phrases as ph
from skill import status as st
from skill.handlers import match_printer

log = logging.getLogger(__name__)

INTENT = "RemindWhenDoneIntent"
PERMISSION = "alexa::alerts:reminders:skill:readwrite"
MESSAGING_SCOPE = "alexa:skill_messaging"
REMINDERS_PATH = "/v1/alerts/reminders"
MOVED_BY = timedelta(minutes=3)
MESSAGE_KIND = "herald.reminder"

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
    response: dict[str, Any] = {"outputSpeech": {"type": "SSML", "ssml": ph.ssml(text)}, "shouldEndSession": end}
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
    """The Reminders API body: an absolute trigger in the device's zone (local time, no offset)."""
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
    """Sets reminders in session, and keeps them in step out of session (a bounded queue,
    one worker)."""

    def __init__(self, herald: Herald, *, timeout: float = 3.0, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(timeout)
        self.herald = herald
        self._now = now or (lambda: datetime.now(UTC))
        self.queue: asyncio.Queue[tuple[str, int, datetime | None]] = asyncio.Queue(maxsize=1000)
        # printer id -> {reminder id: finish it is set for (or queued to be)}
        self.watching: dict[str, dict[int, datetime]] = {}
        self._loaded = False
        self.messages_sent = 0

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
            reminder = await shielded(AlexaReminder.create(
                user_id=source.user_id or 0, alexa_user_id=alexa_user_id[:512], api_endpoint=endpoint[:200],
                printer_id=printer["id"], job=job, alert_token=alert_token[:512], finish_at=finish,
                time_zone=zone, locale=locale))
            self.watching.setdefault(printer["id"], {})[reminder.id] = finish
        left = ph.for_locale(locale).duration((finish - now).total_seconds())
        return _speak(say["set"].format(printer=name, left=left))

    async def forget(self, envelope: dict[str, Any]) -> None:
        """The skill was disabled: the Amazon account's reminders are no longer Herald's to keep."""
        alexa_user_id = str((_system(envelope).get("user") or {}).get("userId") or "")
        for reminder in await AlexaReminder.filter(alexa_user_id=alexa_user_id):
            self.watching.get(reminder.printer_id, {}).pop(reminder.id, None)
        await shielded(AlexaReminder.filter(alexa_user_id=alexa_user_id).delete())

    # ---- out of session ---------------------------------------------------------------------

    def on_status(self, printer_id: str, view: dict[str, Any]) -> None:
        """A status push (sync, on the push's path): queue an update when the finish moved."""
        watched = self.watching.get(printer_id)
        if not watched:
            return
        finish = expected_finish(view, self._now())
        if finish is None:
            return
        for reminder_id, set_for in list(watched.items()):
            if abs(finish - set_for) > MOVED_BY:
                watched[reminder_id] = finish
                self._put(("update", reminder_id, finish))

    async def on_event(self, event: Any, printer: Any, connection: Any) -> None:
        """``print.failed`` / ``print.cancelled`` remove the printer's reminders, ``print.done``
        leaves them (Alexa speaks it) and stops watching."""
        if event.type not in ("print.failed", "print.cancelled", "print.done"):
            return
        watched = self.watching.pop(printer.id, None) or {}
        if event.type == "print.done":
            await AlexaReminder.filter(printer_id=printer.id).using_db(connection).delete()
            return
        stored = await AlexaReminder.filter(printer_id=printer.id).using_db(connection).values_list("id", flat=True)
        for reminder_id in set(watched) | {int(str(i)) for i in stored}:
            self._put(("delete", reminder_id, None))

    def _put(self, item: tuple[str, int, datetime | None]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("Alexa reminder queue is full: one reminder change dropped")

    async def load(self) -> None:
        for reminder in await AlexaReminder.all():
            self.watching.setdefault(reminder.printer_id, {})[reminder.id] = reminder.finish_at
        self._loaded = True

    async def run(self) -> None:
        while not self._loaded:
            try:
                await self.load()
            except Exception:  # the database may not be open yet
                await asyncio.sleep(1.0)
        while True:
            action, reminder_id, finish = await self.queue.get()
            try:
                await self.send_message(action, reminder_id, finish)
            except Exception:  # one failed change must not stop the others
                log.exception("Alexa reminder %s failed", action)
            finally:
                self.queue.task_done()

    async def send_message(self, action: str, reminder_id: int, finish: datetime | None) -> None:
        """Ask Alexa, through the Skill Messaging API, for a request with a fresh token."""
        reminder = await AlexaReminder.get_or_none(id=reminder_id)
        if reminder is None:
            return
        notifier = self.herald.part(AlexaNotifier)
        if not notifier.configured:
            log.info("Alexa reminder not kept in step: the skill's client id and secret are not set")
            return
        lwa = await notifier._access_token(MESSAGING_SCOPE)
        data: dict[str, Any] = {"kind": MESSAGE_KIND, "action": action, "reminder": reminder_id}
        if finish is not None:
            data["finish"] = finish.astimezone(UTC).isoformat()
        url = f"{reminder.api_endpoint.rstrip('/')}/v1/skillmessages/users/{quote(reminder.alexa_user_id, safe='')}"
        async with self.session().post(url, json={"data": data, "expiresAfterSeconds": 3600}, allow_redirects=False,
                                       headers={"Authorization": f"Bearer {lwa}"}) as response:
            if response.status == 401:
                notifier._tokens.pop(MESSAGING_SCOPE, None)
            if response.status != 202:
                log.warning("Alexa's Skill Messaging API answered HTTP %s", response.status)
                return
        self.messages_sent += 1

    async def message_received(self, envelope: dict[str, Any]) -> None:
        """``Messaging.MessageReceived``: do what the message asks with the fresh token."""
        system = _system(envelope)
        message = (envelope.get("request") or {}).get("message") or {}
        if message.get("kind") != MESSAGE_KIND:
            return
        alexa_user_id = str((system.get("user") or {}).get("userId") or "")
        token = str(system.get("apiAccessToken") or "")
        reminder = await AlexaReminder.get_or_none(id=int(message.get("reminder") or 0), alexa_user_id=alexa_user_id)
        if reminder is None or not token:
            return
        endpoint = str(system.get("apiEndpoint") or reminder.api_endpoint).rstrip("/")
        url = f"{endpoint}{REMINDERS_PATH}/{quote(reminder.alert_token, safe='')}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            if message.get("action") == "delete":
                async with self.session().delete(url, headers=headers, allow_redirects=False) as response:
                    if response.status not in (200, 204, 404):
                        log.warning("Alexa's Reminders API answered HTTP %s to a removal", response.status)
                await shielded(AlexaReminder.filter(id=reminder.id).delete())
                return
            finish = datetime.fromisoformat(str(message.get("finish")))
            printer = await reminder.printer
            name = ph.spoken_name(printer.spoken_name or printer.name)
            body = reminder_body(finish_at=finish, zone=reminder.time_zone, locale=reminder.locale,
                                 printer_name=name, now=self._now())
            async with self.session().put(url, json=body, headers=headers, allow_redirects=False) as response:
                if response.status == 404:  # the user deleted it in the Alexa app
                    await shielded(AlexaReminder.filter(id=reminder.id).delete())
                    self.watching.get(reminder.printer_id, {}).pop(reminder.id, None)
                    return
                if response.status != 200:
                    log.warning("Alexa's Reminders API answered HTTP %s to an update", response.status)
                    return
            await shielded(AlexaReminder.filter(id=reminder.id).update(finish_at=finish))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("Alexa reminder change failed: %r", exc)


def _slot_value(slot: dict[str, Any]) -> str | None:
    for authority in ((slot.get("resolutions") or {}).get("resolutionsPerAuthority") or []):
        if ((authority.get("status") or {}).get("code") == "ER_SUCCESS_MATCH") and authority.get("values"):
            return str(authority["values"][0]["value"]["name"])
    return slot.get("value") or None
