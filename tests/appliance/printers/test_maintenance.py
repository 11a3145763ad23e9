"""Offline detection, purge, leases, job history and the chart."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from appliance.app import create_app
from appliance.core.leases import claim_due, release
from appliance.core.models import Lease
from appliance.core.runtime_settings import set_runtime
from appliance.printers.maintenance import detect_offline, purge
from appliance.printers.models import Event, Job, Printer, StatusSample
from appliance.printers.state import printer_state
from appliance.printers.status import flush_status
from tests.support.printers import STATUS, bearer, event_body, make_printer
from tests.support.smtp import SMTPServer
from tests.support.users import login, make_user


async def put_status(client, key, body=STATUS):
    response = await client.put("/api/v1/printer/status", json=body, headers=bearer(key))
    assert response.status_code == 204
    return response


async def test_offline_after_silence_then_online_again(client, herald, clock):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await put_status(client, key)
    clock.advance(herald.settings.offline_after - 1)
    assert await detect_offline(herald) == []
    clock.advance(2)
    assert await detect_offline(herald) == [printer.id]
    assert await detect_offline(herald) == []  # recorded once
    await login(client)
    view = await (await client.get(f"/api/v1/printers/{printer.id}")).get_json()
    assert view["online"] is False and view["linked"] is True
    offline = await Event.get(printer_id=printer.id, type="printer.offline")
    assert offline.payload["last_seen"] == "2026-11-22T12:00:00Z"

    clock.advance(60)
    await put_status(client, key)
    await flush_status(herald)
    types = [e.type for e in await Event.filter(printer_id=printer.id).order_by("sequence")]
    assert types == ["printer.offline", "printer.online"]
    view = await (await client.get(f"/api/v1/printers/{printer.id}")).get_json()
    assert view["online"] is True


async def test_restart_never_makes_printers_flap(settings, clock):
    app = create_app(settings, clock=clock)
    async with app.test_app() as test_app:
        herald = test_app.app.extensions["herald"]
        user = await make_user()
        printer, key = await make_printer(herald, user)
        await put_status(test_app.test_client(), key)
    # Herald was down for 10 minutes; the printer's last check-in is long past.
    clock.advance(600)
    app = create_app(settings, clock=clock)
    async with app.test_app() as test_app:
        herald = test_app.app.extensions["herald"]
        assert await detect_offline(herald) == []
        clock.advance(60)
        await put_status(test_app.test_client(), key)  # its heartbeat arrives
        clock.advance(herald.settings.offline_after - 1)
        assert await detect_offline(herald) == []
        assert await Event.filter(printer_id=printer.id).count() == 0
        # A printer that really stays silent goes offline, counted from Herald's start.
        clock.advance(2)
        assert await detect_offline(herald) == [printer.id]


async def test_purge_warns_then_removes_and_drops_old_events(client, herald, clock, settings):
    user = await make_user()
    keep, keep_key = await make_printer(herald, user, "Alive")
    gone, gone_key = await make_printer(herald, user, "Silent")
    await put_status(client, gone_key)
    await client.post("/api/v1/printer/events", json=event_body("old"), headers=bearer(gone_key))
    await client.post("/api/v1/printer/events", json=event_body("kept-old"), headers=bearer(keep_key))
    with SMTPServer() as smtp:
        for name, value in smtp.settings().items():
            await set_runtime(herald, name, value)
        for _day in range(8):
            clock.advance(86400)
            await put_status(client, keep_key)
        result = await purge(herald)
        assert result.printers_warned == [gone.id] and result.printers_removed == []
        (mail,) = await smtp.wait_for(1)
        assert mail["To"] == user.email and "Silent" in mail.get_payload()
        assert (await Printer.get(id=gone.id)).purge_warned_at is not None
        await login(client)
        page = await (await client.get(f"/printers/{gone.id}")).get_data(as_text=True)
        assert "will be removed" in page
        assert (await purge(herald)).printers_warned == []  # warned once
        assert len(smtp.messages) == 1
    for _day in range(3):
        clock.advance(86400)
        await put_status(client, keep_key)
    result = await purge(herald)
    assert result.printers_removed == [gone.id]
    assert await Printer.filter(id=gone.id).count() == 0
    assert (await Printer.get(id=keep.id)).purge_warned_at is None
    assert (await client.put("/api/v1/printer/status", json=STATUS, headers=bearer(gone_key))).status_code == 401
    # Events are kept event_retention_days.
    assert await Event.filter(printer_id=keep.id).count() == 1
    clock.advance(settings.event_retention_days * 86400)
    await put_status(client, keep_key)
    assert (await purge(herald)).events_removed == 1
    assert await Event.filter(printer_id=keep.id).count() == 0


async def test_checking_in_clears_the_purge_warning(client, herald, clock):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await put_status(client, key)
    clock.advance(8 * 86400)
    assert (await purge(herald)).printers_warned == [printer.id]
    await put_status(client, key)
    await flush_status(herald)
    assert (await Printer.get(id=printer.id)).purge_warned_at is None


async def test_purge_disabled_with_zero(settings, clock):
    app = create_app(settings.replace(purge_after_days=0), clock=clock)
    async with app.test_app() as test_app:
        herald = test_app.app.extensions["herald"]
        user = await make_user()
        await make_printer(herald, user)
        clock.advance(365 * 86400)
        result = await purge(herald)
        assert result.printers_removed == [] and await Printer.all().count() == 1


async def test_lease_lets_one_holder_run_a_due_job(app, clock):
    results = await asyncio.gather(*(claim_due("job", f"p{i}", every=10, hold_for=60, clock=clock)
                                     for i in range(4)))
    assert sorted(results) == [False, False, False, True]
    winner = f"p{results.index(True)}"
    await release("job", winner, clock=clock)
    assert not await claim_due("job", "p9", every=10, hold_for=60, clock=clock)  # not due yet
    clock.advance(10)
    assert await claim_due("job", "p9", every=10, hold_for=60, clock=clock)
    # A holder that died keeps others out until its lease expires.
    clock.advance(10)
    assert not await claim_due("job", "p1", every=10, hold_for=60, clock=clock)
    clock.advance(60)
    assert await claim_due("job", "p1", every=10, hold_for=60, clock=clock)
    assert (await Lease.get(name="job")).holder == "p1"


async def test_job_history_from_last_job_without_events(client, herald, clock):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await put_status(client, key)
    await flush_status(herald)
    clock.advance(30)
    await put_status(client, key)  # same last_job again: no second job
    await flush_status(herald)
    jobs = await Job.filter(printer_id=printer.id)
    assert [(j.file, j.result, j.duration) for j in jobs] == [("cube.gcode", "completed", 3600)]
    # Events and last_job agree: a job known from events is not added again.
    await client.post("/api/v1/printer/events", json=event_body("s1", "print.started"), headers=bearer(key))
    await client.post("/api/v1/printer/events",
                      json=event_body("d1", "print.done", payload={"name": "benchy.gcode", "time": 99}),
                      headers=bearer(key))
    status = {**STATUS, "last_job": {"file": "benchy.gcode", "duration": 99, "result": "completed"}}
    clock.advance(30)
    await put_status(client, key, status)
    await flush_status(herald)
    jobs = await Job.filter(printer_id=printer.id).order_by("id")
    assert [(j.file, j.result) for j in jobs] == [("cube.gcode", "completed"), ("benchy.gcode", "completed")]


async def test_a_restart_records_no_phantom_jobs(client, herald, clock):
    """After Herald restarts its memory is empty, and every printer's first status brings
    its last_job again: each real job is still recorded once."""
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await client.post("/api/v1/printer/events", json=event_body("s1", "print.started",
                      payload={"name": "cube.gcode"}), headers=bearer(key))
    clock.advance(3600)
    await client.post("/api/v1/printer/events", json=event_body("d1", "print.done",
                      payload={"name": "cube.gcode", "time": 3600.4}), headers=bearer(key))
    # The next print is running; the status's last_job (duration rounded) is the cube.
    await client.post("/api/v1/printer/events", json=event_body("s2", "print.started",
                      payload={"name": "benchy.gcode"}), headers=bearer(key))
    status = {**STATUS, "last_job": {"file": "cube.gcode", "duration": 3600, "result": "completed"}}
    await put_status(client, key, status)
    await flush_status(herald)
    for _restart in range(2):
        state = printer_state(herald)
        state.live.clear()  # what a new process knows
        state.last_jobs.clear()
        clock.advance(60)
        await put_status(client, key, status)
        await flush_status(herald)
    jobs = await Job.filter(printer_id=printer.id).order_by("id")
    assert [(j.file, j.result, j.duration) for j in jobs] == [("cube.gcode", "completed", 3600.4),
                                                            ("benchy.gcode", None, None)]
    # A job Herald never heard of is recorded once, without an invented start.
    status = {**STATUS, "last_job": {"file": "vase.gcode", "duration": 120, "result": "failed"}}
    for _restart in range(2):
        printer_state(herald).live.clear()
        clock.advance(60)
        await put_status(client, key, status)
        await flush_status(herald)
    vase = await Job.filter(printer_id=printer.id, file="vase.gcode")
    assert [(j.result, j.duration, j.started_at) for j in vase] == [("failed", 120, None)]


async def test_job_history_keeps_fifty(client, herald):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    for i in range(55):
        await client.post("/api/v1/printer/events", json=event_body(f"s{i}", "print.started",
                          payload={"name": f"part{i}.gcode"}), headers=bearer(key))
    jobs = await Job.filter(printer_id=printer.id).order_by("id")
    assert len(jobs) == 50 and jobs[-1].file == "part54.gcode" and jobs[0].file == "part5.gcode"


async def test_detail_page_chart_and_samples_bounded(client, herald, clock):
    user = await make_user()
    printer, key = await make_printer(herald, user)
    for minute in range(5):
        status = {**STATUS, "job": {**STATUS["job"], "progress": minute * 10.0}}
        await put_status(client, key, status)
        await flush_status(herald)
        clock.advance(20)  # three check-ins per sample: samples are downsampled
    assert await StatusSample.filter(printer_id=printer.id).count() == 2
    await login(client)
    page = await (await client.get(f"/printers/{printer.id}")).get_data(as_text=True)
    assert page.count("<polyline") == 3  # tool0, bed, progress
    assert "tool0 last 210°C" in page and "cube.gcode" in page
    clock.advance(13 * 3600)
    await purge(herald)
    assert await StatusSample.filter(printer_id=printer.id).count() == 0


def test_purge_command_help():
    result = subprocess.run([sys.executable, "-m", "appliance", "purge", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "HERALD_PURGE_AFTER_DAYS" in result.stdout
