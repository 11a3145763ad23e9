"""PostgreSQL for tests: one throwaway database per test, cloned from a migrated template."""

from __future__ import annotations

import os
import socket

from tests.support.needs import unavailable

HOST = os.environ.get("HERALD_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("HERALD_TEST_PG_PORT", "5432"))
USER = os.environ.get("HERALD_TEST_PG_USER", "postgres")
ADMIN_DB = os.environ.get("HERALD_TEST_PG_DB", "test")


def reachable() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1.0):
            return True
    except OSError:
        return False


def require_server() -> None:
    if reachable():
        return
    unavailable(f"PostgreSQL is not reachable at {HOST}:{PORT}")


def url(database: str) -> str:
    return f"postgres://{USER}@{HOST}:{PORT}/{database}"


async def _admin():
    import asyncpg

    return await asyncpg.connect(host=HOST, port=PORT, user=USER, database=ADMIN_DB)


async def create_database(name: str, template: str | None = None) -> None:
    conn = await _admin()
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()


async def drop_database(name: str) -> None:
    conn = await _admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
