"""A local server that answers as Amazon's Alexa APIs do (as documented), recording what
Herald sends: the Device Settings API's time zone, Login with Amazon's client-credentials
token, the Proactive Events API's development stage, the Reminders API and the Skill Messaging
API (which, as Alexa does, answers 202 and then sends the skill a ``Messaging.MessageReceived``
request carrying a fresh ``apiAccessToken``, through ``deliver``).

Where the shapes come from (each handler names its source):
- Reminders REST API Reference, developer.amazon.com/docs/smapi/alexa-reminders-api-reference.html,
  and Amazon's SDK (ask-sdk-model ``ReminderManagementServiceClient``: create 200, update 200 /
  404 / 409, delete 200, 401 without the permission);
- Skill Messaging REST API Reference, .../smapi/skill-messaging-api-reference.html (202; SDK
  errors 400 bad data, 403 expired or invalid token, 404 unknown user, 429);
- "Configure an Application or Service to Send Messages to Your Skill" (Login with Amazon:
  POST /auth/o2/token, form-encoded, grant_type=client_credentials, scope);
- Proactive Events REST API Reference, .../smapi/proactive-events-api-reference.html, and the
  Proactive Events Schemas page (AMAZON.MessageAlert.Activated), with the SDK's error table
  (202; 400 invalid; 403 invalid token; 409 a referenceId already used for that user; 429);
- Alexa Settings API Reference (GET /v2/devices/{deviceId}/settings/System.timeZone).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

# How long a test waits for Herald's call to arrive: generous, since a busy machine (two real
# herald serve processes on PostgreSQL) can take a minute; the tests prove order, not speed.
WAIT = 180


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class FakeAlexaApi:
    """``GET /v2/devices/{deviceId}/settings/System.timeZone`` answers ``zones[deviceId]`` as a
    JSON string (200) for the bearer token ``token``, 403 for any other token, 204 for a device
    without a zone; ``status`` forces an error status; ``hold`` keeps every answer waiting."""

    token: str = "api-token-1"
    zones: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    hold: asyncio.Event | None = None
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    skill_id: str = "amzn1.ask.skill.00000000-0000-0000-0000-000000000000"
    client_id: str = "amzn1.application-oa2-client.herald-test"
    client_secret: str = "skill-messaging-secret"
    tokens: list[Call] = field(default_factory=list)
    events: list[Call] = field(default_factory=list)
    event_arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    # Reminders API: tokens whose user granted alexa::alerts:reminders:skill:readwrite
    reminder_tokens: set[str] = field(default_factory=lambda: {"api-token-1"})
    reminders: dict[str, Any] = field(default_factory=dict)  # alertToken -> body
    reminder_calls: list[Call] = field(default_factory=list)
    messages: list[Call] = field(default_factory=list)
    # statuses the next Proactive Events / Skill Messaging calls answer instead (a fault script),
    # with Retry-After for a 429
    event_faults: list[int] = field(default_factory=list)
    message_faults: list[int] = field(default_factory=list)
    retry_after: str = "1"
    event_hold: asyncio.Event | None = None  # the next Proactive Events call waits for it (a timeout)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    accepted: list[Call] = field(default_factory=list)  # events Alexa took (202)  # (path, why) of 4xx answers
    _references: set[tuple[str, str]] = field(default_factory=set)
    # deliver(envelope): how "Alexa" sends the skill a request (tests post it to /alexa)
    deliver: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _scopes: dict[str, str] = field(default_factory=dict)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    def _refuse(self, request: web.Request, status: int, why: str) -> web.Response:
        self.rejected.append((request.path, why))
        return web.json_response({"code": "INVALID_REQUEST", "message": why}, status=status)

    @staticmethod
    def _json_type(request: web.Request) -> bool:
        return request.content_type == "application/json"

    async def _lwa_token(self, request: web.Request) -> web.Response:
        """Login with Amazon: client credentials in a form body, a bearer token for an hour."""
        if request.content_type != "application/x-www-form-urlencoded":
            return self._refuse(request, 400, "Content-Type must be application/x-www-form-urlencoded")
        form = dict(await request.post())
        self.tokens.append(Call(request.method, request.path, dict(request.headers), form))
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("scope") not in ("alexa:skill_messaging", "alexa::proactive_events"):
            return web.json_response({"error": "invalid_scope"}, status=400)
        kind = "messaging" if form.get("scope") == "alexa:skill_messaging" else "proactive"
        token = f"Atc|{kind}-{len(self.tokens)}"
        self._scopes[token] = str(form.get("scope"))
        return web.json_response({"access_token": token, "expires_in": 3600,
                                  "scope": form.get("scope"), "token_type": "bearer"})

    def revoke_tokens(self) -> None:
        """Every token handed out stops working (as when one expires early)."""
        self._scopes.clear()

    @staticmethod
    def _event_problem(body: Any) -> str | None:
        """What the Proactive Events reference and the MessageAlert schema require."""
        if not isinstance(body, dict):
            return "body is not an object"
        missing = {"timestamp", "referenceId", "expiryTime", "event", "relevantAudience"} - set(body)
        if missing:
            return f"missing {sorted(missing)}"
        if not re.fullmatch(r"[A-Za-z0-9~]{1,100}", str(body["referenceId"])):
            return "referenceId allows 1-100 letters, digits and ~"
        try:
            stamps = [datetime.fromisoformat(str(body[k]).replace("Z", "+00:00")) for k in ("timestamp", "expiryTime")]
        except ValueError:
            return "timestamp or expiryTime is not ISO 8601"
        if any(s.tzinfo is None for s in stamps) or stamps[1] <= stamps[0]:
            return "expiryTime must be a zoned time after timestamp"
        event = body["event"]
        if not isinstance(event, dict) or event.get("name") != "AMAZON.MessageAlert.Activated":
            return "unknown event name"
        payload = event.get("payload") or {}
        state, group = payload.get("state") or {}, payload.get("messageGroup") or {}
        if state.get("status") not in ("UNREAD", "FLAGGED") or state.get("freshness", "NEW") not in ("NEW", "OVERDUE"):
            return "bad state"
        creator = (group.get("creator") or {}).get("name")
        if not isinstance(creator, str) or not creator or not isinstance(group.get("count"), int) or group["count"] < 1:
            return "bad messageGroup"
        if group.get("urgency", "URGENT") != "URGENT":
            return "bad urgency"
        audience = body["relevantAudience"]
        if audience.get("type") == "Unicast":
            if not (audience.get("payload") or {}).get("user"):
                return "Unicast needs payload.user"
        elif audience.get("type") != "Multicast":
            return "bad relevantAudience"
        return None

    async def _proactive_event(self, request: web.Request) -> web.Response:
        """Proactive Events, development stage: 202 Accepted for a valid event and token."""
        body = await request.json()
        async with self.event_arrived:
            self.events.append(Call(request.method, request.path, dict(request.headers), body))
            self.event_arrived.notify_all()
        if self.event_hold is not None:
            hold, self.event_hold = self.event_hold, None
            await hold.wait()
        if self.event_faults:
            status = self.event_faults.pop(0)
            headers = {"Retry-After": self.retry_after} if status == 429 else None
            return web.json_response({"code": "FAULT", "message": "scripted"}, status=status, headers=headers)
        if not self._json_type(request):
            return self._refuse(request, 400, "Content-Type must be application/json")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self._scopes.get(token) != "alexa::proactive_events":
            return self._refuse(request, 403, "the authentication token is invalid")
        problem = self._event_problem(body)
        if problem:
            return self._refuse(request, 400, problem)
        key = (str(body["referenceId"]), str((body["relevantAudience"].get("payload") or {}).get("user")))
        if key in self._references:
            return self._refuse(request, 409, "duplicate referenceId for this user")
        self._references.add(key)
        self.accepted.append(self.events[-1])
        return web.Response(status=202)

    async def wait_for_events(self, count: int) -> list[Call]:
        async with self.event_arrived:
            await asyncio.wait_for(self.event_arrived.wait_for(lambda: len(self.events) >= count), WAIT)
        return self.events

    async def _record(self, calls: list[Call], call: Call) -> None:
        async with self.arrived:
            calls.append(call)
            self.arrived.notify_all()

    async def wait_for(self, calls: list[Call], count: int) -> list[Call]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(calls) >= count), WAIT)
        return calls

    @staticmethod
    def _reminder_problem(body: Any) -> str | None:
        """What Amazon's reference requires of a reminder body (absolute trigger: local time
        without an offset, and an IANA zone)."""
        if not isinstance(body, dict) or not {"requestTime", "trigger", "alertInfo", "pushNotification"} <= set(body):
            return "missing fields"
        trigger = body["trigger"]
        local = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?"
        if trigger.get("type") == "SCHEDULED_ABSOLUTE":
            if not re.fullmatch(local, str(trigger.get("scheduledTime"))) or not trigger.get("timeZoneId"):
                return "bad absolute trigger"
        elif trigger.get("type") == "SCHEDULED_RELATIVE":
            if not isinstance(trigger.get("offsetInSeconds"), int):
                return "bad relative trigger"
        else:
            return "bad trigger type"
        content = ((body["alertInfo"].get("spokenInfo") or {}).get("content")) or []
        if not content or not all(c.get("locale") and c.get("text") for c in content):
            return "bad spokenInfo"
        if body["pushNotification"].get("status") not in ("ENABLED", "DISABLED"):
            return "bad pushNotification"
        return None

    def _reminder_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.reminder_tokens:
            return web.json_response({"code": "UNAUTHORIZED", "message": "Permission not granted"}, status=401)
        return None

    async def _reminder_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self._record(self.reminder_calls, Call(request.method, request.path, dict(request.headers), body))
        if not self._json_type(request):
            return self._refuse(request, 400, "Content-Type must be application/json")
        refused = self._reminder_auth(request)
        if refused is not None:
            return refused
        problem = self._reminder_problem(body)
        if problem:
            return web.json_response({"code": "INVALID_REQUEST", "message": problem}, status=400)
        alert_token = str(uuid.uuid4())
        self.reminders[alert_token] = body
        return web.json_response({"alertToken": alert_token, "createdTime": body["requestTime"],
                                  "updatedTime": body["requestTime"], "status": "ON", "version": "1",
                                  "href": f"/v1/alerts/reminders/{alert_token}"}, status=200)

    async def _reminder_change(self, request: web.Request) -> web.Response:
        body = await request.json() if request.method == "PUT" else None
        await self._record(self.reminder_calls, Call(request.method, request.path, dict(request.headers), body))
        refused = self._reminder_auth(request)
        if refused is not None:
            return refused
        alert_token = request.match_info["alert_token"]
        if alert_token not in self.reminders:
            return web.json_response({"code": "NOT_FOUND", "message": "no such reminder"}, status=404)
        if request.method == "DELETE":
            del self.reminders[alert_token]
            return web.Response(status=200)
        if not self._json_type(request):
            return self._refuse(request, 400, "Content-Type must be application/json")
        problem = self._reminder_problem(body)
        if problem:
            return web.json_response({"code": "INVALID_REQUEST", "message": problem}, status=400)
        self.reminders[alert_token] = body
        return web.json_response({"alertToken": alert_token, "createdTime": body["requestTime"],
                                  "updatedTime": body["requestTime"], "status": "ON", "version": "2",
                                  "href": f"/v1/alerts/reminders/{alert_token}"})

    async def _skill_message(self, request: web.Request) -> web.Response:
        """Skill Messaging API: a client-credentials token of scope alexa:skill_messaging, a
        ``data`` object and ``expiresAfterSeconds`` (60..86400); 202, then the message reaches
        the skill as ``Messaging.MessageReceived`` with a fresh ``apiAccessToken``."""
        body = await request.json()
        await self._record(self.messages, Call(request.method, request.path, dict(request.headers), body))
        if self.message_faults:
            return web.json_response({"message": "scripted"}, status=self.message_faults.pop(0))
        if not self._json_type(request):
            return self._refuse(request, 400, "Content-Type must be application/json")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self._scopes.get(token) != "alexa:skill_messaging":
            return self._refuse(request, 403, "the skill messaging authentication token is expired or not valid")
        seconds = body.get("expiresAfterSeconds", 3600)  # optional, 3600 by default
        if not isinstance(body.get("data"), dict) or not (isinstance(seconds, int) and 60 <= seconds <= 86400):
            return self._refuse(request, 400, "data is missing or not valid")
        fresh = f"api-token-message-{len(self.messages)}"
        self.reminder_tokens.add(fresh)
        envelope = {"version": "1.0", "context": {"System": {
            "application": {"applicationId": self.skill_id}, "user": {"userId": request.match_info["user_id"]},
            "apiEndpoint": self.url, "apiAccessToken": fresh}},
            "request": {"type": "Messaging.MessageReceived", "requestId": f"amzn1.echo-api.request.{uuid.uuid4()}",
                        "timestamp": "2026-11-22T12:00:00Z", "message": body["data"]}}
        if self.deliver is not None:
            task = asyncio.create_task(self.deliver(envelope))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=202)

    async def _time_zone(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.method, request.path, dict(request.headers)))
        if self.hold is not None:
            await self.hold.wait()
        if self.status is not None:
            return web.json_response({"type": "INTERNAL_ERROR", "message": "forced"}, status=self.status)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"type": "FORBIDDEN", "message": "Request is not authorized."}, status=403)
        zone = self.zones.get(request.match_info["device_id"])
        if zone is None:
            return web.Response(status=204)
        return web.json_response(zone)

    async def __aenter__(self) -> FakeAlexaApi:
        app = web.Application()
        app.router.add_get("/v2/devices/{device_id}/settings/System.timeZone", self._time_zone)
        app.router.add_post("/auth/o2/token", self._lwa_token)
        app.router.add_post("/v1/proactiveEvents/stages/development", self._proactive_event)
        app.router.add_post("/v1/alerts/reminders", self._reminder_create)
        app.router.add_put("/v1/alerts/reminders/{alert_token}", self._reminder_change)
        app.router.add_delete("/v1/alerts/reminders/{alert_token}", self._reminder_change)
        app.router.add_post("/v1/skillmessages/users/{user_id}", self._skill_message)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.hold is not None:
            self.hold.set()
        for task in list(self._tasks):
            await task
        assert self._runner is not None
        await self._runner.cleanup()
