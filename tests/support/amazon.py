"""A local server that answers as Amazon's Alexa APIs do (as documented), recording what
Herald sends: the Device Settings API's time zone, Login with Amazon's client-credentials
token and the Proactive Events API's development stage."""

from __future__ import annotations

import asyncio
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
    client_id: str = "amzn1.application-oa2-client.herald-test"
    client_secret: str = "skill-messaging-secret"
    tokens: list[Call] = field(default_factory=list)
    events: list[Call] = field(default_factory=list)
    event_arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    async def _lwa_token(self, request: web.Request) -> web.Response:
        """Login with Amazon: client credentials in the form body, a bearer token for an hour."""
        form = dict(await request.post())
        self.tokens.append(Call(request.method, request.path, dict(request.headers), form))
        if (form.get("grant_type") != "client_credentials" or form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response({"access_token": f"Atc|proactive-{len(self.tokens)}", "expires_in": 3600,
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
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.hold is not None:
            self.hold.set()
        assert self._runner is not None
        await self._runner.cleanup()
