"""A real webhook receiver (aiohttp on 127.0.0.1) and a store-and-notify helper for printer events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from appliance.printers.models import Event, Printer


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    content_type: str

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


Handler = Callable[[web.Request, "Received"], Awaitable[web.StreamResponse] | web.StreamResponse | None]


@dataclass
class Receiver:
    """Records every request; ``respond`` decides the answer (default 200 "ok")."""

    port: int = 0
    respond: Handler | None = None
    requests: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(request.method, request.path, dict(request.query),
                            {k.lower(): v for k, v in request.headers.items()}, body, request.content_type)
        self.requests.append(received)
        self._arrived.set()
        if self.respond is not None:
            answer = self.respond(request, received)
            if asyncio.iscoroutine(answer):
                answer = await answer
            if answer is not None:
                return answer
        return web.Response(text="ok")

    async def start(self) -> Receiver:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout: float = 10.0, path: str | None = None) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = [r for r in self.requests if path is None or r.path == path]
            if len(got) >= count:
                return got
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"receiver got {len(got)} of {count} requests")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.2))
            except TimeoutError:
                pass


async def store_event(herald, printer: Printer, type: str, *, payload: dict | None = None,
                      printer_data: dict | None = None, occurred_at: datetime | None = None,
                      snapshot_path: str | None = None, event_id: str | None = None) -> Event:
    """Store a printer event and call the event listeners in its transaction, as the events API does."""
    now = herald.clock.now()
    async with in_transaction() as connection:
        await Printer.filter(id=printer.id).using_db(connection).update(event_sequence=F("event_sequence") + 1)
        fresh = await Printer.get(id=printer.id).using_db(connection)
        event = await Event.create(
            printer_id=printer.id, event_id=event_id or str(uuid.uuid4()), type=type,
            sequence=fresh.event_sequence, occurred_at=occurred_at or now, received_at=now,
            payload=payload or {}, printer_data=printer_data or {}, snapshot_path=snapshot_path,
            using_db=connection)
        for listener in herald.hooks.event_listeners:
            await listener(event, fresh, connection)
    return event
