"""Alexa reminders kept in step by whichever process hears the news (the state is the
reminder's row), with one process at a time working on a reminder (the row's lease):
in-process with a lease held by "another process", then two real ``herald serve`` on one
PostgreSQL database, the reminder set through one and the moved estimate pushed to the other."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from appliance.alexa.models import AlexaReminder
from appliance.alexa.reminders import ReminderKeeper
from appliance.core.herald import herald_of
from appliance.printers.views import build_view
from tests.appliance.printers.test_printers_live import (
    add_printer,
    browser,
    browser_login,
    create_admin,
)
from tests.conftest import free_port
from tests.support.alexa import SKILL_ID, envelope
from tests.support.amazon import FakeAlexaApi
from tests.support.printers import STATUS, bearer, event_body, make_printer
from tests.support.server import LiveServer
from tests.support.users import make_user

DEVICE = "amzn1.ask.device.TEST"
SAID = "remind you when"


async def eventually(check, seconds: float = 180.0) -> None:
    """Wait until ``check()`` holds (database or fake server state; no wall-clock claim: the bound only
    ends a hung run, and two real servers under a loaded CI machine took over 60 s)."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the state is in a database, not an event
            await asyncio.sleep(0.1)


def _status(left: int) -> dict:
    return {**STATUS, "job": {**STATUS["job"], "print_time_left": left}}


def _remind(api) -> dict:
    return envelope(intent="RemindWhenDoneIntent", api_endpoint=api.url, api_access_token="api-token-1",
                    device_id=DEVICE)


def _scheduled(body) -> datetime:
    trigger = body["trigger"]
    return datetime.fromisoformat(trigger["scheduledTime"]).replace(tzinfo=ZoneInfo(trigger["timeZoneId"]))


# --- one app; "another process" holds the lease ---------------------------------------------


@pytest.fixture
def settings(settings):
    return settings.replace(alexa_skill_id=SKILL_ID, alexa_single_owner=True, alexa_verify_requests=False)


async def test_a_reminder_another_process_holds_is_left_until_its_lease_ends(app, client, herald, clock):
    user = await make_user("owner@example.com", admin=True)
    _, key = await make_printer(herald, user, "Prusa")
    await client.put("/api/v1/printer/status", json=_status(2400), headers=bearer(key))
    keeper = herald_of(app.app).part(ReminderKeeper)
    async with FakeAlexaApi() as api:
        herald_of(app.app).settings = herald.settings.replace(
            alexa_client_id=api.client_id, alexa_client_secret=api.client_secret,
            alexa_token_url=f"{api.url}/auth/o2/token")
        api.skill_id = SKILL_ID
        delivered: list[dict] = []

        async def deliver(env):  # "Alexa" sends the skill its message
            delivered.append(env)
            response = await client.post("/alexa", data=json.dumps(env).encode(),
                                         headers={"Content-Type": "application/json"})
            assert response.status_code == 200
        api.deliver = deliver

        response = await client.post("/alexa", data=json.dumps(_remind(api)).encode(),
                                     headers={"Content-Type": "application/json"})
        assert SAID in (await response.get_json())["response"]["outputSpeech"]["ssml"]
        (reminder,) = await AlexaReminder.all()
        other = "other-host:4242:abcd"
        await AlexaReminder.filter(id=reminder.id).update(locked_by=other,
                                                          locked_until=clock.now() + timedelta(seconds=60))

        await client.put("/api/v1/printer/status", json=_status(2400 + 20 * 60), headers=bearer(key))

        async def wished() -> bool:
            return (await AlexaReminder.get(id=reminder.id)).revision == 1
        await eventually(wished)
        keeper._wake.set()
        await asyncio.sleep(0.3)
        assert api.messages == []  # the other process holds it: this one sends nothing

        clock.advance(61)  # the other process is gone: its lease runs out
        keeper._wake.set()
        await api.wait_for(api.reminder_calls, 2)
        put = api.reminder_calls[1]
        assert put.method == "PUT" and _scheduled(put.body) == reminder.finish_at + timedelta(minutes=20)

        async def applied() -> bool:
            row = await AlexaReminder.get(id=reminder.id)
            return row.applied_revision == 1 and row.locked_by is None
        await eventually(applied)

        # A message that arrives while another process holds the reminder changes nothing;
        # once the lease is free, the next message applies the newest wish.
        await AlexaReminder.filter(id=reminder.id).update(locked_by=other,
                                                          locked_until=clock.now() + timedelta(seconds=60))
        await client.put("/api/v1/printer/status", json=_status(2400 + 40 * 60), headers=bearer(key))

        async def wished_again() -> bool:
            return (await AlexaReminder.get(id=reminder.id)).revision == 2
        await eventually(wished_again)
        keeper.lease_tries = 2
        message = json.loads(json.dumps(delivered[0]))
        message["request"]["message"]["revision"] = 2
        await keeper.message_received(message)
        assert len(api.reminder_calls) == 2 and (await AlexaReminder.get(id=reminder.id)).applied_revision == 1
        await AlexaReminder.filter(id=reminder.id).update(locked_by=None, locked_until=None)
        await keeper.message_received(message)
        third = api.reminder_calls[2]
        assert third.method == "PUT" and _scheduled(third.body) == clock.now() + timedelta(seconds=2400 + 40 * 60)
        row = await AlexaReminder.get(id=reminder.id)
        assert row.applied_revision == 2 and row.locked_by is None
        await keeper.message_received(message)  # Alexa delivers it again: nothing more happens
        assert len(api.reminder_calls) == 3


async def test_a_push_older_than_the_one_that_moved_the_reminder_never_moves_it_back(app, client, herald, clock):
    """Pushes of one printer reach several processes, and each looks at what it heard every
    POLL_EVERY seconds: a process still holding the push from before must not undo the move
    another made from a newer push."""
    user = await make_user("owner@example.com", admin=True)
    printer, key = await make_printer(herald, user, "Prusa")
    await client.put("/api/v1/printer/status", json=_status(2400), headers=bearer(key))
    keeper = herald_of(app.app).part(ReminderKeeper)
    async with FakeAlexaApi() as api:
        api.skill_id = SKILL_ID
        response = await client.post("/alexa", data=json.dumps(_remind(api)).encode(),
                                     headers={"Content-Type": "application/json"})
        assert SAID in (await response.get_json())["response"]["outputSpeech"]["ssml"]
        (reminder,) = await AlexaReminder.all()
        heard_before = build_view(printer_id=printer.id, name="Prusa", linked=True, online=True,
                                  last_seen=clock.now(), status=_status(2400))
        clock.advance(5)
        heard_now = build_view(printer_id=printer.id, name="Prusa", linked=True, online=True,
                               last_seen=clock.now(), status=_status(2400 + 20 * 60))
        keeper.on_status(printer.id, heard_now)  # this process hears the news
        assert await keeper.check_statuses() == 1
        moved = await AlexaReminder.get(id=reminder.id)
        assert moved.revision == 1 and moved.want_finish == clock.now() + timedelta(seconds=2400 + 20 * 60)

        clock.advance(1)
        keeper.on_status(printer.id, heard_before)  # as another process would, a round late
        assert await keeper.check_statuses() == 0
        row = await AlexaReminder.get(id=reminder.id)
        assert (row.revision, row.want_finish) == (1, moved.want_finish)

        clock.advance(1)  # a newer push saying the old estimate again does move it
        keeper.on_status(printer.id, build_view(printer_id=printer.id, name="Prusa", linked=True, online=True,
                                                last_seen=clock.now(), status=_status(2400)))
        assert await keeper.check_statuses() == 1
        assert (await AlexaReminder.get(id=reminder.id)).want_finish == clock.now() + timedelta(seconds=2400)


# --- two real processes on one PostgreSQL database -------------------------------------------


async def _post(http: aiohttp.ClientSession, url: str, path: str, body: dict, key: str | None = None) -> dict:
    headers = bearer(key) if key else {}
    method = http.put if path.endswith("/status") else http.post
    async with method(url + path, json=body, headers=headers) as response:
        assert response.status in (200, 202, 204), await response.text()
        return await response.json() if response.status == 200 else {}


@pytest.mark.parametrize("backend", ["postgres"])
async def test_two_processes_keep_one_reminder_in_step_whichever_hears_the_news(tmp_path, database_url):
    async with FakeAlexaApi() as api, aiohttp.ClientSession() as http:
        api.skill_id = SKILL_ID
        env = {"HERALD_DATABASE_URL": database_url, "HERALD_ALEXA_SKILL_ID": SKILL_ID,
               "HERALD_ALEXA_VERIFY_REQUESTS": "false", "HERALD_ALEXA_SINGLE_OWNER": "true",
               "HERALD_ALEXA_CLIENT_ID": api.client_id, "HERALD_ALEXA_CLIENT_SECRET": api.client_secret,
               "HERALD_ALEXA_TOKEN_URL": f"{api.url}/auth/o2/token"}
        a, b = (LiveServer(data_dir=tmp_path / "data", port=free_port(), env=env,
                           log_path=tmp_path / f"server-{name}.log") for name in "ab")
        db = await asyncpg.connect(database_url)
        try:
            a.start()
            b.start()
            create_admin(a)

            async def deliver(message):  # Alexa's Messaging.MessageReceived goes to process A
                await _post(http, a.url, "/alexa", message)
            api.deliver = deliver

            async with browser() as owner:
                key = await add_printer(owner, a.url, await browser_login(owner, a.url), "Prusa")
            await _post(http, a.url, "/api/v1/printer/status", _status(2400), key)

            async def reminder_set() -> bool:  # once A's flush has stored the status
                answer = await _post(http, a.url, "/alexa", _remind(api))
                return SAID in answer["response"]["outputSpeech"]["ssml"]
            await eventually(reminder_set)
            (first,) = api.reminder_calls
            set_for = _scheduled(first.body)

            async def row() -> asyncpg.Record:
                return await db.fetchrow("SELECT * FROM alexa_reminders")

            async def applied(revision: int) -> bool:
                current = await row()
                return current["applied_revision"] == current["revision"] == revision

            # 1. the estimate moves on process B, which did not set the reminder
            await _post(http, b.url, "/api/v1/printer/status", _status(2400 + 20 * 60), key)
            await api.wait_for(api.reminder_calls, 2)
            await eventually(lambda: applied(1))
            moved = api.reminder_calls[1]
            assert moved.method == "PUT" and moved.headers["Authorization"] == "Bearer api-token-message-1"
            assert abs(_scheduled(moved.body) - (set_for + timedelta(minutes=20))) < timedelta(seconds=30)

            # 2. both processes hear the same news at once: one change, one message, one update
            await asyncio.gather(*(_post(http, s.url, "/api/v1/printer/status", _status(2400 + 40 * 60), key)
                                   for s in (a, b)))
            await api.wait_for(api.reminder_calls, 3)
            await eventually(lambda: applied(2))
            assert len(api.messages) == 2 and [c.method for c in api.reminder_calls] == ["POST", "PUT", "PUT"]

            # 3. the print is cancelled through B: the reminder goes
            await _post(http, b.url, "/api/v1/printer/events",
                        event_body(event_id="7b0e0b8e-0000-4000-8000-000000000009", type_="print.cancelled"), key)
            await api.wait_for(api.reminder_calls, 4)

            async def gone() -> bool:
                return await row() is None
            await eventually(gone)
            assert api.reminder_calls[3].method == "DELETE" and api.reminders == {}
            assert len(api.messages) == 3
            assert [m.body["data"]["revision"] for m in api.messages] == [1, 2, 3]
        finally:
            await db.close()
            for server in (a, b):
                assert server.stop() == 0, server.log()
