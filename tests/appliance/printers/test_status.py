"""The status store: PUT status, GET printers, bad input, coalesced writes, listeners."""

from __future__ import annotations

import asyncio
import json

import pytest

from appliance.accounts.models import AccessToken
from appliance.core.errors import Unauthenticated
from appliance.core.secrets import new_token, token_hash
from appliance.printers.models import Printer
from appliance.printers.status import flush_status
from tests.support.printers import STATUS, bearer, make_printer
from tests.support.users import login, make_user


async def put_status(client, key, body, **kwargs):
    return await client.put("/api/v1/printer/status", json=body, headers=bearer(key), **kwargs)


async def test_status_round_trip(client, herald, clock):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    seen = []
    herald.hooks.status_listeners.append(lambda printer_id, view: seen.append((printer_id, view)))
    body = {**STATUS, "something_new": {"ignored": True}}
    body["temperatures"] = {**STATUS["temperatures"], "tool1": {"actual": None, "target": None},
                            "chamber": {"actual": 31.5, "target": None}}
    response = await put_status(client, key, body)
    assert response.status_code == 204

    await login(client)
    view = await (await client.get(f"/api/v1/printers/{printer.id}")).get_json()
    assert set(view) == {"id", "name", "linked", "online", "last_seen", "status"}
    assert view["id"] == printer.id and view["linked"] and view["online"]
    assert view["last_seen"] == "2026-11-22T12:00:00Z"
    assert view["status"]["temperatures"]["chamber"] == {"actual": 31.5, "target": None}
    assert view["status"]["job"] == STATUS["job"] and view["status"]["last_job"] == STATUS["last_job"]
    assert "something_new" not in view["status"]
    # Listeners get the same object the GET returns.
    assert seen == [(printer.id, view)]
    listing = await (await client.get("/api/v1/printers")).get_json()
    assert listing == {"printers": [view]}

    await flush_status(herald)
    stored = await Printer.get(id=printer.id)
    assert stored.status["job"]["file"] == "benchy.gcode" and stored.last_seen_at == clock.now()

    # Latest wins, nulls accepted.
    clock.advance(30)
    minimal = {"state": "Operational", "state_id": "operational", "job": {"file": None, "progress": None}}
    assert (await put_status(client, key, minimal)).status_code == 204
    view = await (await client.get(f"/api/v1/printers/{printer.id}")).get_json()
    assert view["status"]["state_id"] == "operational" and view["status"]["temperatures"] is None
    assert view["last_seen"] == "2026-11-22T12:00:30Z"


async def periodic_jobs_ran(herald, *names: str) -> None:
    """Wait (by the leases' records, not by the clock) until each job has run once and let go."""
    from appliance.core.models import Lease

    for _ in range(600):
        done = await Lease.filter(name__in=list(names), last_run_at__not_isnull=True,
                                  expires_at__lte=herald.clock.now()).count()
        if done == len(names):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"periodic jobs {names} did not run")


async def test_status_writes_are_coalesced(settings, clock):
    from appliance.app import create_app

    app = create_app(settings.replace(status_flush_interval=3600), clock=clock)
    async with app.test_app() as test_app:
        herald = test_app.app.extensions["herald"]
        client = test_app.test_client()
        user = await make_user()
        printers = [await make_printer(herald, user, f"P{i}") for i in range(3)]
        # Offline detection and purging flush too, once right at start: let those runs end
        # first, or on a busy machine one of them flushes part of what this test sends.
        await periodic_jobs_ran(herald, "offline-detection", "purge")
        for _round in range(5):
            for _printer, key in printers:
                assert (await put_status(client, key, STATUS)).status_code == 204
        # Nothing is written per request ...
        assert await Printer.filter(status__isnull=False).count() == 0
        # ... and one flush writes each printer's latest status once.
        assert await flush_status(herald) == 3
        assert await flush_status(herald) == 0
        assert await Printer.filter(status__isnull=False).count() == 3


async def test_status_survives_restart_via_shutdown_flush(settings, clock):
    from appliance.app import create_app

    app = create_app(settings, clock=clock)
    async with app.test_app() as test_app:
        herald = test_app.app.extensions["herald"]
        user = await make_user()
        printer, key = await make_printer(herald, user)
        response = await test_app.test_client().put("/api/v1/printer/status", json=STATUS, headers=bearer(key))
        assert response.status_code == 204
    # The app stopped (flushing on the way); read the database afresh.
    app = create_app(settings, clock=clock)
    async with app.test_app():
        stored = await Printer.get(id=printer.id)
        assert stored.status["state"] == "Printing"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "Printing", "state_id": "printing", "job": {"progress": "half"}}, "job.progress"),
        ({"state": "Printing", "state_id": "printing", "job": {"progress": 140}}, "job.progress"),
        ({"state": "Printing", "state_id": "melting"}, "state_id"),
        ({"state": 5, "state_id": "printing"}, "state"),
        ({"state_id": "printing"}, "state"),
        ({"state": "x", "state_id": "printing", "temperatures": {"bed": {"actual": "hot"}}}, "temperatures.bed.actual"),
        ({"state": "x", "state_id": "printing", "last_job": {"result": "exploded"}}, "last_job.result"),
        ([1, 2], "body"),
    ],
)
async def test_status_wrong_types_name_the_field(client, herald, body, field):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    response = await put_status(client, key, body)
    answer = await response.get_json()
    assert response.status_code == 422, answer
    assert answer["message"].startswith(field) or field in answer["message"], answer
    await flush_status(herald)
    assert (await Printer.get(id=printer.id)).status is None  # nothing stored half-way


async def test_status_bad_bodies(client, herald):
    user = await make_user()
    _printer, key = await make_printer(herald, user)
    headers = {**bearer(key), "Content-Type": "application/json"}
    response = await client.put("/api/v1/printer/status", data=b'{"state": "Print', headers=headers)
    assert response.status_code == 400 and (await response.get_json())["error"] == "invalid_json"
    response = await client.put("/api/v1/printer/status", data=b"", headers=headers)
    assert response.status_code == 400
    big = json.dumps({**STATUS, "padding": "x" * (64 * 1024)}).encode()
    response = await client.put("/api/v1/printer/status", data=big, headers=headers)
    assert response.status_code == 413 and "64 KiB" in (await response.get_json())["message"]
    response = await client.put("/api/v1/printer/status", data=b"x" * (4 * 1024 * 1024), headers=headers)
    assert response.status_code == 413 and (await response.get_json())["message"]
    response = await client.put("/api/v1/printer/status", json=STATUS, headers=bearer("hpk_unknown"))
    assert response.status_code == 401 and "unknown" in (await response.get_json())["message"]
    response = await client.put("/api/v1/printer/status", json=STATUS)
    assert response.status_code == 401


async def test_read_api_with_token_and_scope(client, herald, clock):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await put_status(client, key, STATUS)
    token = new_token("hat_")
    await AccessToken.create(token_hash=token_hash(token), user=user, scope="printers:read")
    other = new_token("hat_")
    await AccessToken.create(token_hash=token_hash(other), user=user, scope="something:else")
    response = await client.get("/api/v1/printers", headers=bearer(token))
    assert response.status_code == 200
    assert (await response.get_json())["printers"][0]["status"]["state"] == "Printing"
    assert (await client.get("/api/v1/printers", headers=bearer(other))).status_code == 403
    assert (await client.get("/api/v1/printers", headers=bearer(key))).status_code == 401
    assert (await client.get("/api/v1/printers")).status_code == 401


async def test_openapi_documents_the_printer_api(client):
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    paths = document["paths"]
    for path in ("/api/v1/link", "/api/v1/link/token", "/api/v1/printer/verify", "/api/v1/printer",
                 "/api/v1/printer/status", "/api/v1/printer/events", "/api/v1/printers",
                 "/api/v1/printers/{printer_id}"):
        assert path in paths, path
    schema = paths["/api/v1/printer/status"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert "PrinterStatus" in json.dumps(schema)
    assert "/link" not in paths and "/printers" not in paths  # pages are not API


async def test_online_transition_records_events(client, herald, clock):
    from appliance.printers.models import Event

    user = await make_user()
    printer, key = await make_printer(herald, user)
    await put_status(client, key, STATUS)
    await flush_status(herald)
    # The very first check-in is not a return from offline.
    assert await Event.filter(printer_id=printer.id).count() == 0
    await Printer.filter(id=printer.id).update(online=False, changed_at=clock.now())
    from appliance.printers.state import printer_state

    printer_state(herald).forget(printer.id)
    await put_status(client, key, STATUS)
    await login(client)
    view = await (await client.get(f"/api/v1/printers/{printer.id}")).get_json()
    assert view["online"] is True  # at once, though the database learns it at the flush
    await flush_status(herald)
    events = await Event.filter(printer_id=printer.id)
    assert [e.type for e in events] == ["printer.online"]
    assert (await Printer.get(id=printer.id)).online is True


async def test_key_cache_preloaded_at_start_and_revalidated(client, herald, clock):
    from appliance.printers.keys import preload_keys, printer_for_key, revalidate_cache
    from appliance.printers.state import printer_state

    user = await make_user()
    printer, key = await make_printer(herald, user)
    state = printer_state(herald)
    state.by_key.clear()
    state.key_of.clear()
    assert await preload_keys(herald) == 1
    assert state.key_of[printer.id] == token_hash(key)
    # Another process rotates the key: here the row changes behind the cache's back.
    await Printer.filter(id=printer.id).update(key_hash=token_hash("hpk_other"), changed_at=clock.now())
    assert (await printer_for_key(herald, key)).id == printer.id  # still cached ...
    assert await revalidate_cache(herald) >= 1
    with pytest.raises(Unauthenticated):
        await printer_for_key(herald, key)  # ... until the revalidation forgets it


async def test_failing_event_listener_does_not_hold_back_status(client, herald, clock):
    from appliance.printers.models import Event
    from appliance.printers.state import printer_state

    user = await make_user()
    printer, key = await make_printer(herald, user)
    await put_status(client, key, STATUS)
    await flush_status(herald)
    await Printer.filter(id=printer.id).update(online=False, changed_at=clock.now())
    printer_state(herald).forget(printer.id)

    async def broken(event, printer_row, connection):
        raise RuntimeError("webhook queue is broken")

    herald.hooks.event_listeners.append(broken)
    clock.advance(10)
    await put_status(client, key, {"state": "Operational", "state_id": "operational"})
    await flush_status(herald)
    stored = await Printer.get(id=printer.id)
    assert stored.status["state_id"] == "operational"  # the status got through
    assert await Event.filter(printer_id=printer.id).count() == 0  # the event rolled back


async def test_local_ip_is_optional_and_checked(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await login(client)
    assert (await put_status(client, key, STATUS)).status_code == 204
    view = await (await client.get(f"/api/v1/printers/{printer.id}")).get_json()
    assert "local_ip" not in view["status"]  # an older plugin's status stays as it was
    bad = await put_status(client, key, {**STATUS, "local_ip": "my-laptop"})
    assert bad.status_code == 422 and "local_ip" in (await bad.get_json())["message"]
    assert (await put_status(client, key, {**STATUS, "local_ip": "192.168.1.20"})).status_code == 204
    view = await (await client.get(f"/api/v1/printers/{printer.id}")).get_json()
    assert view["status"]["local_ip"] == "192.168.1.20"


async def test_a_slow_flush_follow_up_does_not_hold_back_the_next_status_write(client, herald, clock):
    """A SIGKILL loses at most what came after the last write: a flush's follow-up (here a
    status_flushed hook that hangs, as a NOTIFY or the job history did under load) must not
    keep the statuses accepted meanwhile out of the database."""
    user = await make_user()
    printer, key = await make_printer(herald, user)
    hook_entered, release = asyncio.Event(), asyncio.Event()

    async def slow_hook(printer_ids):
        hook_entered.set()
        await release.wait()

    herald.hooks.status_flushed.append(slow_hook)
    assert (await put_status(client, key, STATUS)).status_code == 204
    first = asyncio.create_task(flush_status(herald))
    await asyncio.wait_for(hook_entered.wait(), 30)  # the first flush wrote and is in its follow-up
    assert (await Printer.get(id=printer.id)).status["state_id"] == STATUS["state_id"]

    clock.advance(5)
    later = {"state": "Operational", "state_id": "operational"}
    assert (await put_status(client, key, later)).status_code == 204
    herald.hooks.status_flushed.remove(slow_hook)
    second = asyncio.create_task(flush_status(herald))
    try:
        # The second write commits while the first follow-up still hangs (generous bound: it
        # only fails when the write waits for the follow-up, which it then does for ever).
        for _ in range(600):
            if (await Printer.get(id=printer.id)).status["state_id"] == "operational":
                break
            await asyncio.sleep(0.05)
        assert (await Printer.get(id=printer.id)).status["state_id"] == "operational"
        assert not first.done()
    finally:
        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert second.result() == 1


async def test_a_flush_cancelled_half_way_leaves_its_statuses_for_the_next(client, herald, monkeypatch):
    """A stop cancels the periodic tasks; one of them (offline detection) flushes first. A flush
    cancelled after it took the dirty statuses lost them: the flush at the stop found nothing."""
    from appliance.printers import status as status_module

    user = await make_user()
    printer, key = await make_printer(herald, user)
    assert (await put_status(client, key, STATUS)).status_code == 204
    entered, never = asyncio.Event(), asyncio.Event()
    real = status_module._returning_printers

    async def held(ids):  # the first check-in's read, before the write: held until cancelled
        entered.set()
        await never.wait()

    monkeypatch.setattr(status_module, "_returning_printers", held)
    flushing = asyncio.create_task(flush_status(herald))
    await entered.wait()
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    monkeypatch.setattr(status_module, "_returning_printers", real)
    assert await flush_status(herald) == 1
    assert (await Printer.get(id=printer.id)).status["state"] == "Printing"
