"""A local server that answers as Amazon's Alexa APIs do (as documented), recording what
Herald sends: the Device Settings API's time zone, Login with Amazon's client-credentials
token, the Proactive Events API's development stage, the Reminders API and the Skill Messaging
API (which, as Alexa does, answers 202 and then sends the skill a ``Messaging.MessageReceived``
request carrying a fresh ``apiAccessToken``, through ``deliver``)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


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
    # deliver(envelope): how "Alexa" sends the skill a request (tests post it to /alexa)
    deliver: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _scopes: dict[str, str] = field(default_factory=dict)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    async def _lwa_token(self, request: web.Request) -> web.Response:
        """Login with Amazon: client credentials in the form body, a bearer token for an hour."""
        form = dict(await request.post())
        self.tokens.append(Call(request.method, request.path, dict(request.headers), form))
        if (form.get("grant_type") != "client_credentials" or form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        kind = "messaging" if form.get("scope") == "alexa:skill_messaging" else "proactive"
        token = f"Atc|{kind}-{len(self.tokens)}"
        self._scopes[token] = str(form.get("scope"))
        return web.json_response({"access_token": token, "expires_in": 3600,
                                  "scope": form.get("scope"), "token_type": "bearer"})

    async def _proactive_event(self, request: web.Request) -> web.Response:
        """Proactive Events, development stage: 202 Accepted for a known token."""
        body = await request.json()
        async with self.event_arrived:
            self.events.append(Call(request.method, request.path, dict(request.headers), body))
            self.event_arrived.notify_all()
        if not request.headers.get("Authorization", "").startswith("Bearer Atc|proactive-"):
            return web.json_response({"message": "Invalid token"}, status=401)
        return web.Response(status=202)

    async def wait_for_events(self, count: int) -> list[Call]:
        async with self.event_arrived:
            await asyncio.wait_for(self.event_arrived.wait_for(lambda: len(self.events) >= count), 60)
        return self.events

    async def _record(self, calls: list[Call], call: Call) -> None:
        async with self.arrived:
            calls.append(call)
            self.arrived.notify_all()

    async def wait_for(self, calls: list[Call], count: int) -> list[Call]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(calls) >= count), 60)
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
                                  "href": f"/v1/alerts/reminders/{alert_token}"}, status=201)

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
        problem = self._reminder_problem(body)
        if problem:
            return web.json_response({"code": "INVALID_REQUEST", "message": problem}, status=400)
        self.reminders[alert_token] = body
        return web.json_response({"alertToken": alert_token, "status": "ON", "version": "2"})

    async def _skill_message(self, request: web.Request) -> web.Response:
        """Skill Messaging API: a client-credentials token of scope alexa:skill_messaging, a
        ``data`` object and ``expiresAfterSeconds`` (60..86400); 202, then the message reaches
        the skill as ``Messaging.MessageReceived`` with a fresh ``apiAccessToken``."""
        body = await request.json()
        await self._record(self.messages, Call(request.method, request.path, dict(request.headers), body))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self._scopes.get(token) != "alexa:skill_messaging":
            return web.json_response({"message": "Invalid token"}, status=401)
        seconds = body.get("expiresAfterSeconds")
        if not isinstance(body.get("data"), dict) or not (isinstance(seconds, int) and 60 <= seconds <= 86400):
            return web.json_response({"message": "Invalid request"}, status=400)
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
