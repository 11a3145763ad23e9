"""db.read_dicts: small hot-path reads that do not wait for aiosqlite's thread."""

from __future__ import annotations

import sqlite3

import pytest
from tortoise import Tortoise

from appliance.accounts.models import User
from appliance.core import db
from tests.support.users import make_user

SQL = "SELECT id, email, is_admin FROM users WHERE email = ? ORDER BY id"


def _finish_without_yielding(coroutine):
    """Drive a coroutine one step; it must finish there, never giving the loop a turn."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the read suspended: it went through another thread or the network")


async def test_rows_come_back_as_dicts_like_the_orm_connections(app, backend):
    ada = await make_user("ada@example.com", admin=True)
    await make_user("bob@example.com")
    rows = await db.read_dicts(SQL, "ada@example.com")
    assert rows == [{"id": ada.id, "email": "ada@example.com", "is_admin": rows[0]["is_admin"]}]
    assert bool(rows[0]["is_admin"]) is True
    assert await db.read_dicts(SQL, "nobody@example.com") == []


# SQLite only: PostgreSQL reads go through asyncpg on the event loop, which must await the server.
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_on_sqlite_a_read_finishes_in_one_step_and_sees_every_commit(app, backend):
    await make_user("ada@example.com")
    assert [r["email"] for r in _finish_without_yielding(db.read_dicts(SQL, "ada@example.com"))] == [
        "ada@example.com"]
    # A write through Tortoise's own connection is visible to the next read at once.
    await User.filter(email="ada@example.com").update(email="ada@example.org")
    assert _finish_without_yielding(db.read_dicts(SQL, "ada@example.com")) == []
    assert len(_finish_without_yielding(db.read_dicts(SQL, "ada@example.org"))) == 1


async def test_only_selects_are_taken(app, backend):
    # On SQLite the statement would meet a read-only connection, and a refusal there
    # falls back to the shared one: so the guard is up front, on every backend.
    with pytest.raises(ValueError, match="SELECT"):
        await db.read_dicts("UPDATE users SET email = ? WHERE id > 0", "x@example.com")


@pytest.mark.parametrize("backend", ["sqlite"])  # the separate read-only connection exists on SQLite only
async def test_a_busy_sqlite_reader_falls_back_to_the_shared_connection(app, backend, monkeypatch):
    await make_user("ada@example.com")

    class Busy:
        def execute(self, *_args):
            raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(db._reader, "get", lambda _filename: Busy())
    rows = await db.read_dicts(SQL, "ada@example.com")
    assert [r["email"] for r in rows] == ["ada@example.com"]


@pytest.mark.parametrize("backend", ["sqlite"])  # the separate read-only connection exists on SQLite only
async def test_the_reader_follows_the_database_that_tortoise_has_open(app, backend, tmp_path):
    await make_user("ada@example.com")
    await db.read_dicts(SQL, "ada@example.com")
    assert db._reader.filename == Tortoise.get_connection("default").filename
    await db.close_database()
    assert db._reader.connection is None
