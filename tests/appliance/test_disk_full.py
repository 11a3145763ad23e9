"""A full data disk: clear errors to the plugin, the UI and the log; no damage; recovery
without a restart. SQLite's page limit (PRAGMA max_page_count) makes the database file
full exactly as a full disk does (SQLITE_FULL), without mounting anything."""

from __future__ import annotations

import asyncio
import logging

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.app import create_app
from appliance.core.herald import herald_of
from appliance.core.settings import Settings
from appliance.core.storage import DISK_FULL_MESSAGE
from appliance.printers.models import Event
from appliance.printers.status import flush_status
from tests.support.printers import STATUS, bearer, make_printer, post_events_until_refused
from tests.support.users import login, make_user


async def _pragma(sql: str):
    rows = await Tortoise.get_connection("default").execute_query_dict(sql)
    return list(rows[0].values())[0] if rows else None


async def test_a_full_disk_is_told_to_everyone_and_herald_goes_on_when_there_is_room(tmp_path, caplog):
    settings = Settings.build(data_dir=str(tmp_path), public_url="http://herald.test", smtp_host="")
    EXECUTOR_CACHE.clear()
    app = create_app(settings)
    # Migrating a new database from scratch: more than quart's 5 s on a busy machine.
    async with app.test_app_class(app, startup_timeout=120, shutdown_timeout=120) as test_app:
        client = test_app.test_client()
        herald = herald_of(app)
        admin = await make_user("admin@example.com", admin=True)
        printer, key = await make_printer(herald, admin)
        caplog.set_level(logging.INFO)
        await _pragma(f"PRAGMA max_page_count = {await _pragma('PRAGMA page_count')}")

        # Until a write needs a page the file may not grow by.
        refused = await post_events_until_refused(client, key, pad=2000, tries=2000)
        assert refused is not None, "the database never filled up"
        response, body = refused
        assert response.status_code == 503 and response.headers["Retry-After"] == "30"
        assert await response.get_json() == {"error": "disk_full", "message": DISK_FULL_MESSAGE}
        assert "The data disk is full" in caplog.text and "Traceback" not in caplog.text
        assert (await (await client.get("/healthz")).get_json())["storage"] == "full"
        await login(client, "admin@example.com")
        system = await (await client.get("/admin/system")).get_data(as_text=True)
        assert "Data disk" in system and "FULL since" in system
        # Statuses still come in (memory); writing them waits for room.
        assert (await client.put("/api/v1/printer/status", json=STATUS, headers=bearer(key))).status_code == 204
        stored_before = await Event.filter(printer_id=printer.id).count()

        await _pragma("PRAGMA max_page_count = 1073741823")  # space again: no restart
        again = await client.post("/api/v1/printer/events", json=body, headers=bearer(key))
        assert again.status_code == 202  # the event the plugin kept, sent again
        assert await Event.filter(printer_id=printer.id).count() == stored_before + 1
        await flush_status(herald)
        deadline = asyncio.get_running_loop().time() + 30
        while (await (await client.get("/healthz")).get_json())["storage"] != "ok":
            assert asyncio.get_running_loop().time() < deadline, "storage never said ok again"
            await asyncio.sleep(0.2)
        assert await _pragma("PRAGMA integrity_check") == "ok"
        assert "has room again" in caplog.text
