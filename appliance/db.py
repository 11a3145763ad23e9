"""Opening the database: Tortoise configuration, migrations at start, safe writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from tortoise import Tortoise
from tortoise.migrations.api import migrate

from appliance.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

APP_LABEL = "herald"


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.db_url
    if url.startswith("sqlite:"):
        settings.data_path.mkdir(parents=True, exist_ok=True)
        # WAL (Tortoise's default) with synchronous=NORMAL: a commit no longer waits
        # for fsync, which made every write cost milliseconds (worse on an SD card).
        # A power cut may lose the last commits but never corrupts the database.
        connection: Any = url if "?" in url else url + "?synchronous=NORMAL"
    else:
        connection = url
    return {
        "connections": {"default": connection},
        "apps": {
            APP_LABEL: {
                "models": ["appliance.models"],
                "default_connection": "default",
                "migrations": "appliance.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def apply_migrations(settings: Settings) -> None:
    """Bring the schema up to date; safe to call at every start and from several processes."""
    config = tortoise_config(settings)
    await migrate(config=config)
    await Tortoise.close_connections()


async def open_database(settings: Settings, *, run_migrations: bool = True) -> None:
    if run_migrations:
        await apply_migrations(settings)
    # The global fallback lets queries run from tasks that Quart/hypercorn start
    # outside the context in which before_serving ran.
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


async def shielded(awaitable: Awaitable[T]) -> T:
    """Run a database write to completion even if the request that asked for it is cancelled.

    hypercorn cancels a request's task when the client disconnects. A write cut
    off half-way on SQLite left Tortoise's connection wedged (tortoise issue
    #1757), so every write made on behalf of a request goes through here.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # Let the write finish before the caller goes away, so that nothing (the
        # app's shutdown closing the database, say) runs under a half-done write.
        if not task.done():
            await asyncio.wait([task])
        raise
