"""Live dashboard updates across processes on PostgreSQL, by LISTEN/NOTIFY.

Every process has its own ``LiveHub`` (services/live.py), fed by the statuses
that process accepts. Where several processes share one PostgreSQL database
(``HERALD_WORKERS`` > 1, or several ``herald serve``), this module carries
updates between them:

- After each successful status flush (``services.printers.flush_status``) the
  flushing process sends ``NOTIFY herald_live`` with the ids of the printers it
  wrote: ``{"from": "<pid>:<nonce>", "ids": [...]}``, in as many notifications as
  PostgreSQL's 8000-byte payload limit needs. Only ids, never a status: any
  session of the database role may listen, and the status is in the table anyway.
- Every process LISTENs on one asyncpg connection of its own (application_name
  ``herald-live``), apart from Tortoise's pool, which lends connections out per
  query. On a notification from another process it keeps the ids that its open
  streams watch, reads those printers in one query and publishes their views
  (``services.dashboard.view_from_printer``, as the stream builds them) to its
  hub. Its own notifications it skips: its hub had those statuses from memory.
- When the listening connection is lost, that is logged once and the process
  reconnects with backoff (0.5 s, doubling to 30 s); once listening again, every
  open stream resyncs from the database, for whatever was sent meanwhile. A
  keep-alive query every ``KEEPALIVE`` seconds notices a connection that died
  without a word.

SQLite has a single process, so none of this runs there. The stream's periodic
resync (``live_heartbeat``) stays as the safety net either way.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import asyncpg
from tortoise import Tortoise

from appliance.core.herald import Herald
from appliance.printers import sql
from appliance.printers.live import LiveHub
from appliance.printers.models import Printer

if TYPE_CHECKING:
    from tortoise.backends.base_postgres.client import BasePostgresClient

log = logging.getLogger(__name__)

CHANNEL = "herald_live"
APPLICATION_NAME = "herald-live"
# PostgreSQL refuses payloads of 8000 bytes or more; keep clear of the edge.
PAYLOAD_LIMIT = 7900
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 30.0
KEEPALIVE = 30.0
_READ_CHUNK = 1000  # printer ids per read (a dashboard watches far fewer)
_CONNECT_ARGS = frozenset(inspect.signature(asyncpg.connect).parameters) - {"dsn", "loop"}


def notify_payloads(sender: str, printer_ids: Iterable[str], limit: int = PAYLOAD_LIMIT) -> list[str]:
    """The NOTIFY payloads for these printers: JSON ``{"from", "ids"}``, each under ``limit`` bytes."""
    head = json.dumps({"from": sender, "ids": []}, separators=(",", ":"))
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(head.encode())
    for printer_id in printer_ids:
        cost = len(json.dumps(printer_id).encode()) + (1 if chunk else 0)
        if chunk and size + cost > limit:
            payloads.append(json.dumps({"from": sender, "ids": chunk}, separators=(",", ":")))
            chunk, size = [], len(head.encode())
            cost -= 1
        chunk.append(printer_id)
        size += cost
    if chunk:
        payloads.append(json.dumps({"from": sender, "ids": chunk}, separators=(",", ":")))
    return payloads


def parse_payload(payload: str) -> tuple[str, list[str]] | None:
    """``(sender, ids)`` from a notification, or None when it is not one of ours."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("from"), str) or not isinstance(data.get("ids"), list):
        return None
    return data["from"], [item for item in data["ids"] if isinstance(item, str)]


def connect_params(settings) -> dict[str, Any]:
    """asyncpg.connect arguments for the database Tortoise has open, named ``herald-live``."""
    connection = Tortoise.get_connection("default")
    if not hasattr(connection, "host"):
        # Not Tortoise's asyncpg client: the URL from the settings, without Tortoise's own options.
        dsn = settings.db_url.split("?", 1)[0].replace("postgres://", "postgresql://", 1)
        return {"dsn": dsn, "server_settings": {"application_name": APPLICATION_NAME}}
    # A client with a host is one of Tortoise's PostgreSQL clients (the only server database).
    client = cast("BasePostgresClient", connection)
    server_settings = dict(client.server_settings or {})
    if getattr(client, "schema", None):
        server_settings["search_path"] = client.schema
    server_settings["application_name"] = APPLICATION_NAME
    params = {key: value for key, value in client.extra.items() if key in _CONNECT_ARGS}
    params.update(host=client.host, port=client.port, user=client.user, password=client.password,
                  database=client.database, server_settings=server_settings)
    return params


class LiveBridge:
    """One process's end of the live channel: sends its flushes, hears the others'."""

    def __init__(self, herald: Herald, hub: LiveHub) -> None:
        self.herald = herald
        self.hub = hub
        # The pid says which process sent it; the nonce tells apart two apps in one process.
        self.sender = f"{os.getpid()}:{secrets.token_hex(4)}"
        self.connection: asyncpg.Connection | None = None
        self.connected = asyncio.Event()
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self._down_logged = False

    # --- sending --------------------------------------------------------------------

    async def notify(self, printer_ids: list[str]) -> None:
        """A status-flushed hook: one NOTIFY per chunk of ids, through Tortoise's pool."""
        if not printer_ids:
            return
        payloads = notify_payloads(self.sender, printer_ids)
        await Tortoise.get_connection("default").execute_query(sql.NOTIFY_LIVE, [CHANNEL, payloads])

    # --- listening ------------------------------------------------------------------

    async def listen(self) -> None:
        """Background task: keep a LISTEN connection open, reconnecting with backoff."""
        delay = RECONNECT_FIRST
        listened_before = False
        while not self._closing:
            opened = await self._open()
            if opened is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            connection, lost = opened
            self.connection = connection
            self.connected.set()
            delay = RECONNECT_FIRST
            if self._down_logged:
                log.info("listening for live updates from other processes again")
                self._down_logged = False
            if listened_before:
                self.hub.resync_all()  # notifications sent while we were away are lost
            listened_before = True
            await self._hold(connection, lost)
            # Lost (not cancelled: the shutdown hook closes a connection still open).
            self.connected.clear()
            self.connection = None
            connection.terminate()
            if self._closing:
                return
            self._log_down("lost the connection that listens for live updates; reconnecting "
                           "(open dashboards resync once it is back)")
            await asyncio.sleep(delay)

    async def _open(self) -> tuple[asyncpg.Connection, asyncio.Event] | None:
        """A new connection listening on CHANNEL, with an event set when it is lost; None on failure."""
        try:
            connection = await asyncpg.connect(timeout=10, **connect_params(self.herald.settings))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._log_down("cannot connect to PostgreSQL to listen for live updates (%s); retrying", exc)
            return None
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            connection.terminate()
            self._log_down("cannot listen for live updates (%s); retrying", exc)
            return None
        except BaseException:
            # Cancelled (the app stopping) before the connection was handed over:
            # nobody else knows of it, so close it here or its socket leaks.
            connection.terminate()
            raise
        return connection, lost

    async def _hold(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the connection is gone (told by asyncpg, or a failed keep-alive)."""
        while not lost.is_set() and not connection.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), KEEPALIVE)
            except TimeoutError:
                try:
                    await connection.execute("SELECT 1", timeout=10)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    return

    def _log_down(self, message: str, *args: Any) -> None:
        if not self._down_logged:
            log.warning(message, *args)
            self._down_logged = True
        else:
            log.debug(message, *args)

    def _on_notification(self, _connection, _pid: int, _channel: str, payload: str) -> None:
        parsed = parse_payload(payload)
        if parsed is None:
            return
        sender, printer_ids = parsed
        if sender == self.sender:
            return  # this process's hub had these statuses already, from memory
        watched = self.hub.watched(printer_ids)
        if watched:
            self._pending.update(watched)
            self._wake.set()

    async def deliver(self) -> None:
        """Background task: read the views of notified printers and publish them to the hub."""
        from appliance.printers.dashboard import view_from_printer

        while True:
            await self._wake.wait()
            self._wake.clear()
            printer_ids = self.hub.watched(self._pending)  # streams may have closed meanwhile
            self._pending = set()
            try:
                for start in range(0, len(printer_ids), _READ_CHUNK):
                    printers = await Printer.filter(id__in=printer_ids[start:start + _READ_CHUNK])
                    for printer in printers:
                        self.hub.publish(printer.id, view_from_printer(printer, self.herald))
            except Exception as exc:  # the database is away: Tortoise wraps its errors
                log.warning("reading printers for live updates failed (%s); the next resync repairs it", exc)

    async def close(self) -> None:
        """Shutdown hook: stop listening and close the connection."""
        self._closing = True
        connection, self.connection = self.connection, None
        self.connected.clear()
        if connection is None or connection.is_closed():
            return
        try:
            await asyncio.wait_for(connection.close(), 5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection.terminate()
