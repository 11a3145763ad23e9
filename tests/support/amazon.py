"""A local server that answers as Amazon's Alexa APIs do (as documented), recording what
Herald sends. Only the Device Settings API's time zone so far."""

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
    _runner: web.AppRunner | None = None

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
