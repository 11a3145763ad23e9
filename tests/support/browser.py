"""Browser tests: Playwright driving Debian's Chromium against the real server (LiveServer).

Use in a test module (the fixtures are registered for the whole suite by tests/conftest.py)::

    def test_something(chromium, herald_server, artifacts):
        page = new_page(chromium, herald_server)                 # desktop viewport
        log_in(page, herald_server)                               # as the admin the fixture made
        page.goto(herald_server.url + "/")
        shoot(page, artifacts, "dashboard-desktop")
        assert serious_violations(run_axe(page)) == []

Every page records console errors and CSP violations in ``page.herald_errors``;
``assert_clean(page)`` fails the test when there are any.
Browser tests are plain (sync) test functions in modules of their own (no async tests
beside them): Playwright's sync API runs its own loop while the module's browser is open.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.core.secrets import PRINTER_KEY_PREFIX, new_token, token_hash
from tests.support.server import LiveServer

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}
AXE = Path(__file__).resolve().parents[2] / "appliance" / "static" / "vendor" / "axe.min.js"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module (Debian's, not a Playwright download).

    Module scope, not session: Playwright's sync API keeps its event loop marked as
    running in this thread while it is open, and the async tests of the next module
    need the thread to themselves. So keep browser tests in modules of their own.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, server: LiveServer | None = None, *, viewport: dict | None = None,
             mobile: bool = False, time_zone: str = "Europe/Berlin", bypass_csp: bool = False,
             color_scheme: str = "light"):
    """A page in a fresh context (own cookies) that records console errors and CSP violations."""
    context = browser.new_context(
        viewport=viewport or (PHONE if mobile else DESKTOP),
        is_mobile=mobile, has_touch=mobile, device_scale_factor=2 if mobile else 1,
        timezone_id=time_zone, locale="en-GB", bypass_csp=bypass_csp, color_scheme=color_scheme,
        base_url=server.url if server else None,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.herald_errors = []
    page.on("console", lambda message: message.type == "error" and page.herald_errors.append(message.text))
    page.on("pageerror", lambda error: page.herald_errors.append(str(error)))
    # ERR_ABORTED: the page was left while loading (the event stream, a favicon): not a fault
    page.on("requestfailed", lambda req: req.failure != "net::ERR_ABORTED"
            and page.herald_errors.append(f"{req.url}: {req.failure}"))
    page.on("response", lambda response: response.status >= 400
            and page.herald_errors.append(f"{response.url}: HTTP {response.status}"))
    return page


def assert_clean(page) -> None:
    """No script errors and no Content-Security-Policy violations so far on this page."""
    assert page.herald_errors == [], page.herald_errors


def log_in(page, server: LiveServer, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/$"))


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """$HERALD_TEST_ARTIFACTS/<test name>/ for screenshots."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = Path(os.environ.get("HERALD_TEST_ARTIFACTS", "test-artifacts")) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- accessibility -------------------------------------------------------------------------


def run_axe(page) -> dict:
    """Run the vendored axe-core in the page (WCAG 2.x A and AA rules); returns axe's results.

    The script is evaluated through the DevTools protocol, which the page's CSP does
    not govern, so the page under test keeps its real policy.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate("source => { (0, eval)(source); }", AXE.read_text())
    return page.evaluate(
        """() => axe.run(document, {runOnly: {type: 'tag', values:
              ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"""
    )


def serious_violations(results: dict) -> list[str]:
    """'rule: target (impact)' for every serious or critical violation."""
    found = []
    for violation in results["violations"]:
        if violation["impact"] in ("serious", "critical"):
            for node in violation["nodes"]:
                found.append(f"{violation['id']}: {node['target']} ({violation['impact']}) {violation['help']}")
    return found


# --- the server, with data a test can seed ----------------------------------------------------


@dataclass
class SeededServer(LiveServer):
    """A LiveServer with an admin account, and helpers that write printers into its SQLite file."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "herald.sqlite3"

    def create_admin(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
        subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", email,
                        "--password", password], env=self.environ(), check=True,
                       capture_output=True, timeout=60)

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=10, isolation_level=None)

    def set_time_zone(self, email: str, zone: str) -> None:
        with self._db() as db:
            db.execute("UPDATE users SET time_zone = ? WHERE email = ?", (zone, email))

    def add_printer(self, name: str, status: dict | None, seen: datetime | None,
                    owner: str = ADMIN_EMAIL) -> tuple[str, str]:
        """Insert a linked printer; returns (printer_id, printer_key)."""
        printer_id, key = str(uuid.uuid4()), new_token(PRINTER_KEY_PREFIX)
        now = _db_time(datetime.now(UTC))
        with self._db() as db:
            (owner_id,) = db.execute("SELECT id FROM users WHERE email = ?", (owner,)).fetchone()
            db.execute(
                "INSERT INTO printers (id, owner_id, name, key_hash, created_at, linked_at, last_seen_at,"
                " status, status_updated_at, online, event_sequence, allow_control) VALUES (?,?,?,?,?,?,?,?,?,?,0,?)",
                (printer_id, owner_id, name, token_hash(key), now, now, _db_time(seen),
                 json.dumps(status) if status is not None else None, _db_time(seen), seen is not None, False),
            )
        return printer_id, key

    def push_status(self, printer_key: str, status: dict) -> None:
        """What the plugin does: ``PUT /api/v1/printer/status`` with the printer's key."""
        request = urllib.request.Request(
            self.url + "/api/v1/printer/status", method="PUT", data=json.dumps(status).encode(),
            headers={"Authorization": f"Bearer {printer_key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204, response.status


def _db_time(moment: datetime | None) -> str | None:
    return str(moment.astimezone(UTC)) if moment else None


@pytest.fixture
def herald_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SeededServer]:
    """The real ``herald serve`` (SQLite, 1 s heartbeat) with an admin; stopped after the test.

    ``@pytest.mark.herald_env(HERALD_X="...")`` sets more environment for the server.
    """

    env = {"HERALD_LIVE_HEARTBEAT": "1", "HERALD_SIGNUP_MODE": "closed"}
    for marker in request.node.iter_markers("herald_env"):
        env.update(marker.kwargs)
    yield from seeded_server(tmp_path, env)


def seeded_server(tmp_path: Path, env: dict[str, str]) -> Iterator[SeededServer]:
    """Start ``herald serve`` with an admin and ``env``; yield it; stop it and check it exited cleanly."""
    from tests.conftest import free_port

    server = SeededServer(data_dir=tmp_path / "data", port=free_port(), env=env)
    server.data_dir.mkdir(parents=True)
    server.create_admin()
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        assert code in (0, None), server.log()


def assert_accessible(page) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    found = serious_violations(run_axe(page))
    assert not found, "axe-core found:\n" + "\n".join(found)
