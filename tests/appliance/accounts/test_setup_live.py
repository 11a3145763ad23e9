"""The real server under hypercorn: the setup link from its log creates the first admin over HTTP."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time

import aiohttp

from tests.conftest import free_port
from tests.support.accounts import links_in
from tests.support.server import LiveServer
from tests.support.users import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _wait_for_link(server: LiveServer, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = links_in(server.log(), "setup")
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no setup link in the log:\n{server.log()}")


async def _csrf(http, url: str) -> str:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return _CSRF.search(await response.text()).group(1)


async def test_setup_link_in_the_real_servers_log_creates_the_admin(tmp_path):
    first = LiveServer(data_dir=tmp_path / "data", port=free_port(), log_path=tmp_path / "first.log").start()
    try:
        printed_first = _wait_for_link(first)
    finally:
        assert first.stop() == 0, first.log()
    # Printed again, the same, at every start until used.
    server = LiveServer(data_dir=tmp_path / "data", port=free_port()).start()
    try:
        token = _wait_for_link(server)
        assert token == printed_first
        assert f"{server.url}/setup/{token}" in server.log()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as stranger:
            csrf = await _csrf(stranger, server.url + "/login")
            async with stranger.post(server.url + "/setup/guessed-token", allow_redirects=False,
                                     data={"email": "mallory@example.com", "password": PASSWORD,
                                           "csrf_token": csrf}) as response:
                assert response.status == 404
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as owner:
            csrf = await _csrf(owner, f"{server.url}/setup/{token}")
            async with owner.post(f"{server.url}/setup/{token}", allow_redirects=False,
                                  data={"email": "owner@example.com", "password": PASSWORD,
                                        "csrf_token": csrf}) as response:
                assert response.status == 302, await response.text()
                assert response.headers["Location"] == "/?welcome=setup"
                assert "HttpOnly" in response.headers["Set-Cookie"]
            async with owner.get(server.url + "/admin/users") as response:
                assert response.status == 200
                assert "owner@example.com" in await response.text()
            async with owner.get(f"{server.url}/setup/{token}") as response:
                assert response.status == 404  # used
    finally:
        assert server.stop() == 0, server.log()
    # After a restart with an admin, no link is printed.
    log_before = server.log()
    server = LiveServer(data_dir=tmp_path / "data", port=free_port(), log_path=tmp_path / "third.log").start()
    try:
        assert "/setup/" not in server.log()
    finally:
        assert server.stop() == 0, server.log()
    assert log_before.count("/setup/") == 1


def test_create_admin_command_ends_the_setup_link(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_DATA_DIR"] = str(tmp_path / "data")
    server = LiveServer(data_dir=tmp_path / "data", port=free_port()).start()
    try:
        assert _wait_for_link(server)
    finally:
        assert server.stop() == 0, server.log()
    done = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", "root@example.com",
                           "--password", PASSWORD], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Admin root@example.com created." in done.stdout
    rows = sqlite3.connect(tmp_path / "data" / "herald.sqlite3").execute(
        "SELECT COUNT(*) FROM setup_tokens").fetchone()
    assert rows == (0,)
    done = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", "two@example.com",
                           "--password", "short"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "12 characters" in done.stderr


def test_setup_link_command_prints_the_logged_link_until_an_admin_exists(tmp_path):
    """`herald setup-link`: the Pi image's hook for the link (no log to grep), beside a running Herald."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_DATA_DIR"] = str(tmp_path / "data")
    env["HERALD_PUBLIC_URL"] = "http://herald.local:8080"

    def setup_link() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "appliance", "setup-link"], env=env, capture_output=True,
                              text=True, timeout=60)

    server = LiveServer(data_dir=tmp_path / "data", port=free_port(),
                        env={"HERALD_PUBLIC_URL": "http://herald.local:8080"}).start()
    try:
        token = _wait_for_link(server)
        shown = setup_link()
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == f"http://herald.local:8080/setup/{token}\n"
        assert setup_link().stdout == shown.stdout  # asked again: the same link, not a new one
    finally:
        assert server.stop() == 0, server.log()
    done = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", "root@example.com",
                           "--password", PASSWORD], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    gone = setup_link()
    assert gone.returncode == 3 and gone.stdout == ""
    assert "An admin account exists" in gone.stderr
