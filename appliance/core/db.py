"""Opening the database: Tortoise configuration, migrations at start, safe writes."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tortoise import Tortoise
from tortoise.migrations.api import migrate

from appliance.core.errors import Unavailable
from appliance.core.filemodes import private_dir, private_sqlite
from appliance.core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

APP_LABEL = "herald"
# Every area keeps its models in its own package; Tortoise loads them all under one app label.
MODEL_MODULES = (
    "appliance.core.models",
    "appliance.accounts.models",
    "appliance.printers.models",
    "appliance.webhooks.models",
    "appliance.oauth.models",
    "appliance.apps.models",
    "appliance.alexa.models",
    "appliance.mqtt.models",
    "appliance.relay.models",
)


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.db_url
    if url.startswith("sqlite:"):
        private_dir(settings.data_path)
        database = url.removeprefix("sqlite://").split("?")[0]
        if database and database != ":memory:":
            private_sqlite(Path(database))
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
                "models": list(MODEL_MODULES),
                "default_connection": "default",
                "migrations": "appliance.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


class _DropMessage(logging.Filter):
    """Drops one exact message of a logger, and nothing else it logs."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != self.message


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


class NotADatabase(Exception):
    """The SQLite file in the data directory is not a SQLite database (damaged, or another file)."""


def check_sqlite_file(settings: Settings) -> None:
    """Refuse a SQLite file that is not a database before Tortoise opens it.

    Tortoise's SQLite client never answers on such a file: its first statement fails while the
    client's connection lock is held, and the migration waits on that lock for ever, so
    ``herald serve`` hung with nothing in its log. A missing or empty file is a new database.
    """
    if not settings.is_sqlite:
        return
    path = Path(settings.db_url.removeprefix("sqlite://"))
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise NotADatabase(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if head and head != SQLITE_HEADER:
        raise NotADatabase(
            f"{path} is not a SQLite database (it does not start with SQLite's header): it is damaged or "
            "another file. Move it away to start with an empty database, or put back a copy made with "
            "`herald backup`.")


async def apply_migrations(settings: Settings) -> None:
    """Bring the schema up to date; safe to call at every start and from several processes."""
    check_sqlite_file(settings)
    config = tortoise_config(settings)
    await migrate(config=config)
    # Closing the migration's connection makes Tortoise log "Tortoise-ORM shutdown", which
    # at start reads as if Herald were stopping. Only that message is dropped: warnings and
    # errors of the close (and everything of tortoise.db_client) still reach the log.
    tortoise_log = logging.getLogger("tortoise")
    quiet = _DropMessage("Tortoise-ORM shutdown")
    tortoise_log.addFilter(quiet)
    try:
        await Tortoise.close_connections()
    finally:
        tortoise_log.removeFilter(quiet)
    log.info("Database schema up to date")


async def open_database(settings: Settings, *, run_migrations: bool = True) -> None:
    if run_migrations:
        await apply_migrations(settings)
    # The global fallback lets queries run from tasks that Quart/hypercorn start
    # outside the context in which before_serving ran.
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_database() -> None:
    _reader.close()
    await Tortoise.close_connections()


# --- small reads on the hot path ---------------------------------------------------------


class _SqliteReader(threading.local):
    """A read-only SQLite connection per thread, for ``read_dicts``."""

    connection: sqlite3.Connection | None = None
    filename: str | None = None

    def get(self, filename: str) -> sqlite3.Connection:
        if self.connection is None or self.filename != filename:
            self.close()
            uri = Path(filename).absolute().as_uri() + "?mode=ro"
            # A short busy timeout: in WAL mode readers do not wait for writers, so
            # "busy" is rare (the WAL being recovered); read_dicts then takes the
            # ordinary path instead of holding up the event loop.
            self.connection = sqlite3.connect(uri, uri=True, timeout=0.05, isolation_level=None)
            self.filename = filename
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = self.filename = None


_reader = _SqliteReader()


async def read_dicts(sql: str, *params: Any) -> list[dict[str, Any]]:
    """Run one small SELECT (``?`` placeholders) and return its rows as dicts.

    On SQLite the query runs right here on the event loop's thread, through a
    read-only connection of its own, instead of being handed to aiosqlite's worker
    thread. Measured (docs/benchmarks.md, "Alexa endpoint"): with the event loop
    busy, that hand-over waits for the GIL twice (up to the interpreter's 5 ms
    switch interval each time) and made /alexa's latency under status-ingest load
    several times the bare route's; a read of a few indexed rows costs about
    0.1 ms. Only for small reads by key that must stay fast under load: anything
    that scans goes through Tortoise as usual.

    On PostgreSQL (asyncpg runs on the event loop already) and where the SQLite
    database is in memory, the ordinary connection runs the query.
    """
    if sql.lstrip()[:6].upper() != "SELECT":
        raise ValueError("read_dicts runs SELECT statements only")
    connection = Tortoise.get_connection("default")
    if connection.capabilities.dialect == "sqlite":
        filename = getattr(connection, "filename", ":memory:")
        if filename and filename != ":memory:" and not filename.startswith("file::memory:"):
            try:
                cursor = _reader.get(filename).execute(sql, params)
                names = [column[0] for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            except sqlite3.OperationalError as exc:
                log.debug("fast read fell back to the shared connection: %s", exc)
    return await query_dicts(sql, *params)


async def query_dicts(sql: str, *params: Any) -> list[dict[str, Any]]:
    """Run one SQL statement (``?`` placeholders, on either database) through Tortoise's
    connection and return its rows as dicts: for bulk statements where building the
    query through the ORM costs more than running it."""
    connection = Tortoise.get_connection("default")
    if connection.capabilities.dialect == "postgres":
        parts = sql.split("?")
        sql = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))
    return await connection.execute_query_dict(sql, list(params))


@dataclass(frozen=True)
class Statement:
    """One hand-written SQL statement in both dialects, written side by side in an area's sql.py.

    Placeholders are each driver's own: ``?`` or ``?1`` on SQLite, ``$1`` on PostgreSQL.
    """

    sqlite: str
    postgres: str

    def for_connection(self, connection: Any | None = None) -> str:
        connection = connection or Tortoise.get_connection("default")
        return self.postgres if dialect(connection) == "postgres" else self.sqlite


def dialect(connection: Any | None = None) -> str:
    """``sqlite`` or ``postgres``: the dialect of the (default) connection."""
    connection = connection or Tortoise.get_connection("default")
    return connection.capabilities.dialect


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


async def database_answers() -> None:
    """One round trip to the database, or Unavailable naming why (GET /healthz)."""
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception as exc:  # the database is down: say so, with a 503
        raise Unavailable(f"database does not answer: {type(exc).__name__}", code="database_unavailable") from None
