"""A full data disk on a real filesystem: a small tmpfs mounted as the data directory and
filled to the last byte. The plugin, the UI and the log are told clearly (503 naming the
full disk, never a 500), the database stays sound, and Herald goes on without a restart
once there is room: the refused event is taken, the statuses are written, and deliveries
queued before the disk filled go out.

Mounting needs root (the suite runs as root). Where mounting is not permitted the test
skips and says why, except with CI=true, where it fails: CI must run it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.app import create_app
from appliance.core.herald import herald_of
from appliance.core.settings import Settings
from appliance.core.storage import DISK_FULL_MESSAGE
from appliance.printers.models import Event, Printer
from appliance.printers.status import flush_status
from appliance.webhooks import targets
from appliance.webhooks.models import Delivery
from tests.support.needs import unavailable
from tests.support.printers import (
    STATUS,
    bearer,
    event_body,
    make_printer,
    post_events_until_refused,
)
from tests.support.users import login, make_user
from tests.support.webhooks import Receiver

SIZE = "8m"


def _cannot_mount(reason: str) -> None:
    unavailable(f"cannot mount a tmpfs for the data directory: {reason}")


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of SIZE mounted at tmp_path/data (unmounted afterwards)."""
    mountpoint = tmp_path / "data"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        _cannot_mount("the tests do not run as root")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "herald-test", str(mountpoint)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        _cannot_mount("there is no mount command")
    if done.returncode != 0:
        _cannot_mount(f"mount said: {done.stderr.strip() or done.returncode}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left; returns it."""
    filler = directory / "filler"
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        while True:  # the last few bytes too
            try:
                if not out.write(b"\0" * 512):
                    break
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    return filler


async def _pragma(sql: str):
    rows = await Tortoise.get_connection("default").execute_query_dict(sql)
    return list(rows[0].values())[0] if rows else None


async def eventually(check, what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` (generously: this proves an outcome, not a speed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{what} did not happen within {timeout:.0f} s"
        await asyncio.sleep(0.2)


async def test_a_full_tmpfs_is_told_to_everyone_and_herald_goes_on_when_space_returns(small_disk, caplog):
    settings = Settings.build(data_dir=str(small_disk), public_url="http://herald.test", smtp_host="",
                              webhook_allow_private=True, webhook_retry_schedule="1,1,1,1,1,1,1,1,1,1")
    EXECUTOR_CACHE.clear()
    receiver = Receiver()
    receiver.respond = lambda request, received: web.Response(status=500, text="down for now")
    await receiver.start()
    app = create_app(settings)
    try:
        # Migrating a new database from scratch: more than quart's 5 s on a busy machine.
        async with app.test_app_class(app, startup_timeout=120, shutdown_timeout=120) as test_app:
            client = test_app.test_client()
            herald = herald_of(app)
            admin = await make_user("admin@example.com", admin=True)
            printer, key = await make_printer(herald, admin)
            await targets.create_target(herald, admin, {"name": "hook", "url": receiver.url + "/hook",
                                                        "events": ["print.started"]})
            csrf = await login(client, "admin@example.com")  # a session is a write: before the disk fills
            caplog.set_level(logging.INFO)
            # A delivery queued while the receiver fails: it must go out once there is room again.
            queued = event_body(str(uuid.uuid4()), "print.started")
            assert (await client.post("/api/v1/printer/events", json=queued, headers=bearer(key))).status_code == 202
            await receiver.wait_for(1, timeout=60)

            filler = fill(small_disk)
            # Until a write needs room the disk no longer has.
            refused = await post_events_until_refused(client, key, pad=4000, tries=3000)
            assert refused is not None, "the disk never filled up"
            response, body = refused
            # The plugin: a 503 naming the full disk, with when to retry (it keeps the event).
            assert response.status_code == 503, await response.get_data(as_text=True)
            assert response.headers["Retry-After"] == "30"
            assert await response.get_json() == {"error": "disk_full", "message": DISK_FULL_MESSAGE}
            # A status still comes in (memory); writing it waits for room.
            changed = {**STATUS, "state": "Paused", "state_id": "paused"}
            assert (await client.put("/api/v1/printer/status", json=changed, headers=bearer(key))).status_code == 204
            with pytest.raises(Exception) as flush_error:
                await flush_status(herald)
            assert "full" in str(flush_error.value).lower()
            # The UI: a form that writes answers the error page with the same words, not a 500.
            page = await client.post("/webhooks/new", form={
                "csrf_token": csrf, "name": "second " + "y" * 60, "url": receiver.url + "/second", "method": "POST",
                "content_type": "json", "headers": "{}", "body": "", "events": "print.done",
                "progress_step": "10", "enabled": "on"})
            assert page.status_code == 503
            assert "data disk is full" in await page.get_data(as_text=True)
            system = await (await client.get("/admin/system")).get_data(as_text=True)
            assert "Data disk" in system and "FULL since" in system
            assert (await (await client.get("/healthz")).get_json())["storage"] == "full"
            # The log: said once, plainly, no traceback.
            assert "The data disk is full" in caplog.text and "Traceback" not in caplog.text
            assert caplog.text.count("The data disk is full") <= 2  # the request path and the flusher
            assert await _pragma("PRAGMA integrity_check") == "ok"

            # Space returns; no restart.
            receiver.respond = None
            filler.unlink()
            again = await client.post("/api/v1/printer/events", json=body, headers=bearer(key))
            assert again.status_code == 202  # the event the plugin kept, sent again
            assert await Event.filter(printer_id=printer.id, event_id=body["id"]).exists()

            async def status_written():
                return ((await Printer.get(id=printer.id)).status or {}).get("state_id") == "paused"

            await eventually(status_written, "the status kept in memory being written")

            async def queued_went_out():
                return await Delivery.filter(status="delivered").count() >= 1

            await eventually(queued_went_out, "the delivery queued before the disk filled going out")

            async def storage_ok():
                return (await (await client.get("/healthz")).get_json())["storage"] == "ok"

            await eventually(storage_ok, "/healthz saying storage ok again")
            assert "has room again" in caplog.text
            assert await _pragma("PRAGMA integrity_check") == "ok"
    finally:
        await receiver.stop()
    # And the file as another program reads it, after Herald closed it.
    database = sqlite3.connect(small_disk / "herald.sqlite3")
    try:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        database.close()
