"""Live dashboard updates across processes sharing PostgreSQL (LISTEN/NOTIFY, services/live_pg.py).

In-process tests drive one app and play "the other process" with a raw asyncpg
connection; the end-to-end tests run two real ``herald serve`` on one database
and read the dashboard's event stream over HTTP from one while the plugin talks
to the other. The streams' periodic resync is set to 300 s throughout, so an
update arriving within seconds can only have come by NOTIFY.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import pytest

from appliance.printers.live_pg import (
    APPLICATION_NAME,
    CHANNEL,
    LiveBridge,
    notify_payloads,
    parse_payload,
)
from appliance.printers.models import Printer
from appliance.printers.status import flush_status
from tests.appliance.printers.test_printers_live import (
    add_printer,
    browser,
    browser_login,
    create_admin,
)
from tests.conftest import free_port
from tests.support import pg
from tests.support import printers as printer_support
from tests.support.printers import STATUS, bearer
from tests.support.printers_data import idle_status, make_printer, printing_status
from tests.support.server import LiveServer
from tests.support.sse import sse
from tests.support.users import login, make_user

RESYNC = 300  # live_heartbeat in these tests: far longer than any wait below


@pytest.fixture
def settings(settings):
    return settings.replace(live_heartbeat=RESYNC)


# --- payloads ------------------------------------------------------------------------


def test_payloads_carry_only_ids_in_chunks_under_postgres_limit():
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    payloads = notify_payloads("4242:abcd", ids)
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 for p in payloads)
    assert [json.loads(p).keys() == {"from", "ids"} for p in payloads] == [True] * len(payloads)
    parsed = [parse_payload(p) for p in payloads]
    assert {sender for sender, _ in parsed} == {"4242:abcd"}
    assert [i for _, chunk in parsed for i in chunk] == ids  # all of them, once, in order
    # Chunks are filled, not cut early: each but the last would overflow with one more id.
    for payload, (_, chunk) in zip(payloads[:-1], parsed[1:], strict=True):
        assert len(payload.encode()) + len(json.dumps(chunk[0])) + 1 >= 7900
    assert notify_payloads("1:x", []) == []
    assert parse_payload("not json") is None and parse_payload('{"ids": []}') is None


# --- one app, another process played by hand -----------------------------------------------


@asynccontextmanager
async def listening(database_url: str):
    """A raw LISTEN on Herald's channel; yields the list that fills with payloads."""
    connection = await asyncpg.connect(database_url)
    received: list[str] = []
    await connection.add_listener(CHANNEL, lambda _c, _pid, _channel, payload: received.append(payload))
    try:
        yield received
    finally:
        await connection.close()


async def notify(database_url: str, payload: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await connection.close()


async def listener_backends(database_url: str, datname: str | None = None) -> list[int]:
    """Backends of Herald's listening connections on the database (that of the URL by default)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
            "AND datname = coalesce($2, current_database())", APPLICATION_NAME, datname)
        return sorted(row["pid"] for row in rows)
    finally:
        await connection.close()


async def eventually(predicate, timeout: float, what: str):
    """Poll ``predicate`` (plain or async) until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_sqlite_has_no_bridge_postgres_listens_on_its_own_connection(app, herald, backend, database_url):
    if backend == "sqlite":
        assert herald.part_or_none(LiveBridge) is None and not herald.hooks.status_flushed
        return
    bridge = herald.part(LiveBridge)
    await asyncio.wait_for(bridge.connected.wait(), 10)
    assert len(await listener_backends(database_url)) == 1


@pytest.mark.parametrize("backend", ["postgres"])
async def test_flush_notifies_ids_of_written_printers_never_status(app, client, herald, database_url):
    user = await make_user()
    made = [await printer_support.make_printer(herald, user, f"P{n}") for n in range(2)]
    ids = sorted(printer.id for printer, _key in made)
    sender = herald.part(LiveBridge).sender
    async with listening(database_url) as received:
        for _printer, key in made:
            status = {**STATUS, "job": {**STATUS["job"], "file": "secret-name.gcode"}}
            response = await client.put("/api/v1/printer/status", json=status, headers=bearer(key))
            assert response.status_code == 204
        await flush_status(herald)  # or the background flush got there first
        notified = lambda: sorted(i for p in received for i in parse_payload(p)[1])  # noqa: E731
        await eventually(lambda: notified() == ids, 5, "a notification naming both printers")
        await asyncio.sleep(1.5)  # a background flush with nothing to write sends nothing
        assert notified() == ids
    for payload in received:
        assert json.loads(payload).keys() == {"from", "ids"}
        assert parse_payload(payload)[0] == sender and sender.split(":")[0].isdigit()
        assert "secret-name" not in payload and "Printing" not in payload

    # Many printers at once: several notifications, each under the limit, ids only.
    many = [str(uuid.uuid4()) for _ in range(600)]
    async with listening(database_url) as received:
        await herald.part(LiveBridge).notify(many)
        await eventually(lambda: asyncio.sleep(0, sum(len(parse_payload(p)[1]) for p in received) == 600),
                         5, "every id")
    assert len(received) >= 3 and all(len(p.encode()) < 8000 for p in received)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_notification_from_another_process_reaches_open_stream(app, client, herald, clock, database_url):
    bridge = herald.part(LiveBridge)
    await asyncio.wait_for(bridge.connected.wait(), 10)
    ada = await make_user()
    printer = await make_printer(ada, "Prusa", status=idle_status(), seen=clock.now())
    bob = await make_user("bob@example.com")
    bobs = await make_printer(bob, "Bob's", status=idle_status(), seen=clock.now())
    await login(client)

    async def stored_elsewhere(target, file: str) -> None:
        """What another process's flush leaves in the database."""
        clock.advance(5)
        await Printer.filter(id=target.id).update(status=printing_status(file=file), last_seen_at=clock.now(),
                                                  status_updated_at=clock.now())

    async with sse(client, "/events/dashboard") as stream:
        await stream.next_of("snapshot")
        await notify(database_url, "not one of ours")  # ignored, and does not break the listener
        await stored_elsewhere(printer, "from-b.gcode")
        await stored_elsewhere(bobs, "bobs.gcode")
        await notify(database_url, json.dumps({"from": "1:other", "ids": [bobs.id, printer.id]}))
        card = (await stream.next_of("card", timeout=3)).json()
        assert card["id"] == printer.id and "from-b.gcode" in card["html"] and card["state_label"] == "Printing"

        # Its own notifications a process skips (its hub had the status from memory).
        await stored_elsewhere(printer, "own.gcode")
        await notify(database_url, json.dumps({"from": bridge.sender, "ids": [printer.id]}))
        with pytest.raises(TimeoutError):
            await stream.next(timeout=1.5)
        await notify(database_url, json.dumps({"from": "1:other", "ids": [printer.id]}))
        card = (await stream.next_of("card", timeout=3)).json()
        assert "own.gcode" in card["html"]
        assert "heartbeat" not in stream.comments  # no resync ran: NOTIFY did it


@pytest.mark.parametrize("backend", ["postgres"])
async def test_listener_down_for_a_while_logs_once_and_resyncs_streams_when_back(
        app, client, herald, database_url, caplog):
    bridge = herald.part(LiveBridge)
    await asyncio.wait_for(bridge.connected.wait(), 10)
    await make_user()
    await login(client)
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg.url(pg.ADMIN_DB))
    caplog.set_level("DEBUG", logger="appliance.printers.live_pg")
    try:
        async with sse(client, "/events/dashboard") as stream:
            await stream.next_of("snapshot")
            # Refuse new connections (even the superuser's), then cut the listener's.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            (pid,) = await listener_backends(pg.url(pg.ADMIN_DB), datname=name)
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            await eventually(lambda: not bridge.connected.is_set(), 5, "the bridge to notice")
            await asyncio.sleep(2.5)  # several attempts: 0.5 s, then 1 s, then 2 s apart
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await asyncio.wait_for(bridge.connected.wait(), 10)
            await stream.wait_comment("heartbeat", timeout=5)  # the resync after reconnecting
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    records = [r for r in caplog.records if r.name == "appliance.printers.live_pg"]
    warnings = [r for r in records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "lost the connection" in warnings[0].getMessage()
    assert sum("cannot connect" in r.getMessage() for r in records if r.levelname == "DEBUG") >= 2
    assert [r.getMessage() for r in records if r.levelname == "INFO"] == [
        "listening for live updates from other processes again"]


# --- two real processes -------------------------------------------------------------------


class StreamReader:
    """The dashboard's text/event-stream, read from an aiohttp response line by line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next(self, timeout: float) -> tuple[str, dict | str]:
        """The next event as (name, data); a comment comes as ("comment", text)."""
        async with asyncio.timeout(timeout):
            event, data = "message", []
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        return event, json.loads("\n".join(data))
                    event = "message"
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    return "comment", line[1:].strip()
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())

    async def next_of(self, wanted: str, timeout: float) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                event, data = await self.next(timeout)
                if event == wanted:
                    return data

    async def wait_comment(self, text: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.comments:
                await self.next(timeout)  # comments are recorded as they pass


@pytest.fixture
def two_servers(tmp_path, database_url):
    """Two ``herald serve`` on one PostgreSQL database (SQLite runs one process: nothing to join)."""
    env = {"HERALD_DATABASE_URL": database_url, "HERALD_LIVE_HEARTBEAT": str(RESYNC)}
    servers = [LiveServer(data_dir=tmp_path / "data", port=free_port(), env=env,
                          log_path=tmp_path / f"server{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.start()
        create_admin(servers[0])
        yield servers
    finally:
        for server in servers:
            assert server.stop() == 0, server.log()


@asynccontextmanager
async def dashboard_on(server: LiveServer, printer_name: str):
    """Log in on ``server``, add a printer there; yields (stream, printer id, key) with the stream open."""
    async with browser() as http:
        csrf = await browser_login(http, server.url)
        key = await add_printer(http, server.url, csrf, printer_name)
        async with http.get(server.url + "/events/dashboard", timeout=aiohttp.ClientTimeout(total=None)) as response:
            assert response.status == 200
            stream = StreamReader(response)
            snapshot = await stream.next_of("snapshot", 10)
            (card,) = snapshot["cards"]
            yield stream, card["id"], key


async def push(server: LiveServer, key: str, file: str) -> None:
    async with aiohttp.ClientSession() as plugin:
        status = {**STATUS, "job": {**STATUS["job"], "file": file}}
        async with plugin.put(server.url + "/api/v1/printer/status", json=status, headers=bearer(key)) as response:
            assert response.status == 204


async def card_with(stream: StreamReader, printer_id: str, file: str, timeout: float) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            card = await stream.next_of("card", timeout)
            if card["id"] == printer_id and file in card["html"]:
                return card


@pytest.mark.parametrize("backend", ["postgres"])
async def test_status_pushed_to_one_process_reaches_stream_on_the_other(two_servers, database_url):
    a, b = two_servers
    await eventually(lambda: _count(listener_backends(database_url), 2), 15, "both processes listening")
    async with listening(database_url) as sent, dashboard_on(b, "Shared MK4") as (stream, printer_id, key):
        pushed_at = time.monotonic()
        await push(a, key, "via-notify.gcode")
        card = await card_with(stream, printer_id, "via-notify.gcode", timeout=5)
        took = time.monotonic() - pushed_at
        assert card["state_label"] == "Printing" and card["online"]
        assert took < 4.0, f"took {took:.1f} s"  # the flush interval (1 s) and a NOTIFY, not the 300 s resync
        assert "heartbeat" not in stream.comments
    # What went over the channel: ids from A's process, never the status.
    mine = [parse_payload(p) for p in sent]
    assert any(printer_id in ids for _, ids in mine)
    assert {sender.split(":")[0] for sender, ids in mine if printer_id in ids} == {str(a.process.pid)}
    assert all(json.loads(p).keys() == {"from", "ids"} and "via-notify" not in p for p in sent)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_listener_reconnects_after_its_connection_is_killed(two_servers, database_url):
    a, b = two_servers
    before = await eventually(lambda: _count(listener_backends(database_url), 2), 15, "both processes listening")
    async with dashboard_on(b, "Shared MK4") as (stream, printer_id, key):
        admin = await asyncpg.connect(database_url)
        try:
            for pid in before:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # B noticed, reconnected and had its open stream resync (a heartbeat comment ends a
        # resync; the periodic one is 300 s away).
        await stream.wait_comment("heartbeat", timeout=10)
        after = await eventually(lambda: _count(listener_backends(database_url), 2), 15, "listening again")
        assert not set(after) & set(before)
        await push(a, key, "after-reconnect.gcode")
        await card_with(stream, printer_id, "after-reconnect.gcode", timeout=5)
    for server in (a, b):
        assert server.log().count("lost the connection that listens for live updates") == 1, server.log()
        assert "listening for live updates from other processes again" in server.log()
    # Shutting down closes the listening connections.
    for server in (a, b):
        assert server.stop() == 0, server.log()
    async def none_listening() -> bool:
        return not await listener_backends(database_url)

    await eventually(none_listening, 5, "no listening connection left")


async def _count(rows_coroutine, n: int):
    rows = await rows_coroutine
    return rows if len(rows) == n else None
