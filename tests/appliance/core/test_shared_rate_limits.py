"""Rate limits shared through PostgreSQL by every process, and kept in memory on SQLite.

Two app instances on one database stand for two worker processes: each has its
own limiter object, as each ``herald serve`` worker has; the last test runs two
real ``herald serve`` processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from pathlib import Path

import aiohttp
import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.accounts.users import LOGIN_FAILS_PER_ACCOUNT_AND_ADDRESS
from appliance.app import create_app
from appliance.core.db import tortoise_config
from appliance.core.errors import HeraldError, headers_of, status_of
from appliance.core.models import Lease
from appliance.core.ratelimit import Limit, RateLimiter, SharedRateLimiter
from appliance.core.settings import Settings
from tests.conftest import free_port
from tests.support.accounts import links_in, post_form
from tests.support.server import LiveServer
from tests.support.users import PASSWORD, csrf_from, make_user

NEW_PASSWORD = "a long enough new passphrase"
ATTACKER, OWNER = "192.0.2.10", "198.51.100.20"


async def _try_login(client, email: str, password: str, peer: str):
    token = await csrf_from(client, "/login")
    return await client.post("/login", form={"email": email, "password": password, "csrf_token": token},
                             scope_base={"client": (peer, 40000)})


async def _rows() -> list[dict]:
    return await Tortoise.get_connection("default").execute_query_dict(
        "SELECT key_hash, group_hash, hits::text AS hits, expires_at FROM rate_limits")


@pytest.fixture
def second_app(app, settings, clock):
    """Another app instance on the same database: a second worker process, as far as limits go."""
    return create_app(settings, clock=clock)


async def test_the_limiter_suits_the_database(backend, herald):
    # SQLite runs one process by design and keeps the limits in memory.
    expected = RateLimiter if backend == "sqlite" else SharedRateLimiter
    assert type(herald.rate_limiter) is expected


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_processes_share_the_login_limit(app, second_app, clock, caplog):
    caplog.set_level(logging.INFO)
    assert app.app.extensions["herald"].rate_limiter is not second_app.extensions["herald"].rate_limiter
    await make_user()
    clients = [app.test_client(), second_app.test_client()]
    # Five failures from one address, spread over both processes, ten seconds apart.
    for n in range(LOGIN_FAILS_PER_ACCOUNT_AND_ADDRESS.count):
        response = await _try_login(clients[n % 2], "ada@example.com", "wrong password!!", ATTACKER)
        assert response.status_code == 400, n
        clock.advance(10)
    # Locked on both, even for the right password, with the wait the window leaves: the
    # first failure was 50 s ago, so 850 s of the 15 minutes remain.
    for client in clients:
        response = await _try_login(client, "ada@example.com", PASSWORD, ATTACKER)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "850"
        assert "try again in 15 minutes or reset your password" in await response.get_data(as_text=True)
    # Only that address, and only that account.
    assert (await _try_login(second_app.test_client(), "ada@example.com", PASSWORD, OWNER)).status_code == 302
    await make_user("bob@example.com")
    assert (await _try_login(app.test_client(), "bob@example.com", PASSWORD, ATTACKER)).status_code == 302
    # A password reset through one process lifts the lock on both.
    await post_form(clients[1], "/reset", {"email": "ada@example.com"}, page="/reset")
    (token,) = links_in(caplog.text, "reset")
    response = await post_form(clients[1], f"/reset/{token}", {"password": NEW_PASSWORD}, page=f"/reset/{token}")
    assert response.status_code == 302
    assert (await _try_login(app.test_client(), "ada@example.com", NEW_PASSWORD, ATTACKER)).status_code == 302


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_processes_see_the_lock_end_together(app, second_app, clock):
    await make_user()
    clients = [app.test_client(), second_app.test_client()]
    for n in range(5):
        await _try_login(clients[n % 2], "ada@example.com", "wrong password!!", ATTACKER)
    response = await _try_login(clients[0], "ada@example.com", PASSWORD, ATTACKER)
    retry = int(response.headers["Retry-After"])
    assert retry == 900
    clock.advance(retry - 1)
    assert (await _try_login(clients[1], "ada@example.com", PASSWORD, ATTACKER)).headers["Retry-After"] == "1"
    clock.advance(1)
    for client in clients:
        assert (await _try_login(client, "ada@example.com", PASSWORD, ATTACKER)).status_code == 302


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_concurrent_hits_from_two_processes_count_exactly(app, second_app, herald):
    limiters = [herald.rate_limiter, second_app.extensions["herald"].rate_limiter]
    limit = Limit(count=5, per=60)

    async def one(n: int) -> bool:
        try:
            await limiters[n % 2].hit("link-start:203.0.113.5", limit)
            return True
        except HeraldError as error:
            assert status_of(error) == 429 and headers_of(error)["Retry-After"] == "60"
            return False

    results = await asyncio.gather(*(one(n) for n in range(40)))
    assert sum(results) == 5


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_table_holds_no_plaintext_email_or_address(app, client, herald):
    await make_user("ada.lovelace@example.com")
    for _ in range(3):
        await _try_login(client, "ada.lovelace@example.com", "wrong password!!", ATTACKER)
    await post_form(client, "/reset", {"email": "grace@example.org"}, page="/reset")
    rows = await _rows()
    assert len(rows) == 5  # pair, account and address for the login, account and address for the mail
    dump = repr(rows)
    for secret in ("ada.lovelace", "example.com", "grace", "example.org", ATTACKER, "192.0.2"):
        assert secret not in dump
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", row["key_hash"])
    # Not a plain SHA-256 either, which anyone could compute for every IPv4 address.
    plain = hashlib.sha256(f"login:addr:{ATTACKER}".encode()).hexdigest()
    assert plain not in dump


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_table_is_unlogged(app):
    rows = await Tortoise.get_connection("default").execute_query_dict(
        "SELECT relpersistence::text AS relpersistence FROM pg_class WHERE relname = 'rate_limits'")
    assert rows == [{"relpersistence": "u"}]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_expired_windows_are_purged(app, herald, clock):
    limiter = herald.rate_limiter
    await limiter.hit("short", Limit(3, 60))
    await limiter.hit("long", Limit(3, 3600))
    await limiter.record("login:pair:ada@example.com\x1f192.0.2.1", Limit(5, 900))
    assert await limiter.purge() == 0
    clock.advance(61)
    assert await limiter.purge() == 1
    assert len(await _rows()) == 2
    clock.advance(900)
    assert await limiter.purge() == 1
    clock.advance(3600)
    assert await limiter.purge() == 1
    assert await _rows() == []
    # A key whose row was purged starts afresh.
    await limiter.hit("short", Limit(1, 60))


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_purge_runs_as_a_leased_periodic_job(app):
    # Every process registers it; the lease lets one of them run it at a time.
    for _ in range(100):
        lease = await Lease.get_or_none(name="rate-limit-purge")
        if lease is not None and lease.last_run_at is not None:
            break
        await asyncio.sleep(0.05)
    assert lease is not None and lease.last_run_at is not None


async def test_reset_prefix_lifts_one_group_on_both_backends(app, herald):
    limiter = herald.rate_limiter
    limit = Limit(1, 60)
    for key in ("login:pair:ada@example.com\x1f192.0.2.1", "login:pair:ada@example.com\x1f192.0.2.2",
                "login:pair:ada@example.com.au\x1f192.0.2.1", "login:acct:ada@example.com"):
        await limiter.hit(key, limit)
    await limiter.reset_prefix("login:pair:ada@example.com\x1f")
    await limiter.hit("login:pair:ada@example.com\x1f192.0.2.1", limit)
    await limiter.hit("login:pair:ada@example.com\x1f192.0.2.2", limit)
    for key in ("login:pair:ada@example.com.au\x1f192.0.2.1", "login:acct:ada@example.com"):
        with pytest.raises(HeraldError):
            await limiter.hit(key, limit)
    with pytest.raises(ValueError):
        await limiter.reset_prefix("login:pair:ada")


# --- two real server processes ------------------------------------------------------------


async def _seed_user(settings: Settings) -> None:
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(settings))
    try:
        await make_user()
    finally:
        await Tortoise.close_connections()


async def _post_login(session: aiohttp.ClientSession, url: str, password: str) -> aiohttp.ClientResponse:
    async with session.get(url + "/login") as page:
        token = re.search(r'name="csrf_token" value="([^"]+)"', await page.text()).group(1)
    async with session.post(url + "/login", data={"email": "ada@example.com", "password": password,
                                                  "csrf_token": token}, allow_redirects=False) as response:
        await response.read()
        return response


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_herald_serve_processes_share_the_login_limit(database_url, tmp_path: Path):
    settings = Settings.build(data_dir=str(tmp_path), database_url=database_url)
    await _seed_user(settings)
    env = {"HERALD_DATABASE_URL": database_url}
    servers = [LiveServer(tmp_path, free_port(), env=env, log_path=tmp_path / f"server{i}.log") for i in range(2)]
    sessions = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in servers]
    try:
        for server in servers:
            server.start()
        for n in range(5):  # 127.0.0.1 fails five times, over both processes
            response = await _post_login(sessions[n % 2], servers[n % 2].url, "wrong password!!")
            assert response.status == 400, servers[n % 2].log()
        for session, server in zip(sessions, servers, strict=True):
            response = await _post_login(session, server.url, PASSWORD)
            assert response.status == 429
            assert 880 <= int(response.headers["Retry-After"]) <= 900
    finally:
        for session in sessions:
            await session.close()
        for server in servers:
            server.stop()
