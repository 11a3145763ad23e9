"""A new user's whole journey in a real browser, and axe on the pages a user lives in.

Chromium (Playwright's sync API) against the real ``herald serve``, a real SMTP server
(aiosmtpd) for the confirmation mail and a real aiohttp receiver for the webhook.
Every step of the journey saves a screenshot in the test's artifacts directory.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.browser import (
    ADMIN_EMAIL,
    PHONE,
    SeededServer,
    assert_accessible,
    assert_clean,
    log_in,
    new_page,
    seeded_server,
    shoot,
)
from tests.support.printers_data import idle_status, paused_status, printing_status
from tests.support.smtp import SMTPServer

pytestmark = pytest.mark.slow

USER_EMAIL = "maker@example.net"
USER_PASSWORD = "plywood lantern orbit 42"


# --- real parts: SMTP, the server, a webhook receiver ----------------------------------------


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def journey_server(tmp_path: Path, smtp: SMTPServer):
    """``herald serve`` with open signup, mail to the aiosmtpd server and private webhook targets allowed."""

    env = {"HERALD_LIVE_HEARTBEAT": "60", "HERALD_SIGNUP_MODE": "open",
           "HERALD_SMTP_HOST": "127.0.0.1", "HERALD_SMTP_PORT": str(smtp.port), "HERALD_SMTP_TLS": "none",
           "HERALD_MAIL_FROM": "herald@herald.test", "HERALD_WEBHOOK_ALLOW_PRIVATE": "true",
           "HERALD_WEBHOOK_RETRY_SCHEDULE": "1,1"}
    yield from seeded_server(tmp_path, env)


class ThreadedReceiver:
    """An aiohttp server on 127.0.0.1 in its own thread (the test thread belongs to Playwright)."""

    def __init__(self) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> ThreadedReceiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float = 15.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"expected {count} request(s), got {len(self.requests)}"
            time.sleep(0.05)
        return self.requests


@pytest.fixture
def receiver():
    with ThreadedReceiver() as running:
        yield running


def api(server: SeededServer, method: str, path: str, body: dict | None = None,
        key: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(server.url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for_mail(smtp: SMTPServer, count: int = 1, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while len(smtp.messages) < count:
        assert time.monotonic() < deadline, f"expected {count} mail(s), got {len(smtp.messages)}"
        time.sleep(0.05)
    return smtp.messages


def mail_text(message) -> str:
    if message.is_multipart():
        return "\n".join(part.get_payload(decode=True).decode() for part in message.walk()
                         if part.get_content_type() == "text/plain")
    return message.get_payload(decode=True).decode()


def card(page, printer_id: str):
    return page.locator(f"#printer-{printer_id}")


# --- the journey ------------------------------------------------------------------------------


def test_new_user_journey(chromium, journey_server, smtp, receiver, artifacts):
    server = journey_server
    page = new_page(chromium, server)

    # 1. Sign up (signup is open on this Herald).
    page.goto("/signup")
    page.get_by_label("Email").fill(USER_EMAIL)
    page.get_by_label("Password").fill(USER_PASSWORD)
    shoot(page, artifacts, "01-signup")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r".*/account\?welcome=1$"))
    assert "not confirmed" in page.locator("#address-heading + p").inner_text()
    shoot(page, artifacts, "02-account-unconfirmed")

    # 2. The confirmation mail arrives at the real SMTP server; its link asks to confirm the
    # address (a mail scanner fetching it first changes nothing), and the button confirms it.
    (mail,) = wait_for_mail(smtp, 1)
    assert mail["To"] == USER_EMAIL
    links = re.findall(r"https?://\S+/verify/\S+", mail_text(mail))
    assert links, mail_text(mail)
    with urllib.request.urlopen(links[0], timeout=10) as scanned:
        assert scanned.status == 200
    page.goto(links[0])
    assert page.get_by_role("heading", name=f"Confirm {USER_EMAIL}").is_visible()
    assert_accessible(page)
    shoot(page, artifacts, "03a-confirm-address")
    page.get_by_role("button", name="Confirm address").click()
    page.get_by_role("heading", name="Address confirmed").wait_for()
    shoot(page, artifacts, "03b-address-confirmed")
    page.goto("/account")
    assert "confirmed" in page.locator("#address-heading + p").inner_text()
    assert "not confirmed" not in page.locator("#address-heading + p").inner_text()

    # 3. A printer links itself by the device flow, as the plugin does.
    status, started = api(server, "POST", "/api/v1/link", {"printer_name": "Prusa MK4"})
    assert status == 201, started
    status, pending = api(server, "POST", "/api/v1/link/token", {"device_code": started["device_code"]})
    assert status == 400 and pending["error"] == "authorization_pending", pending
    polled = time.monotonic()
    page.goto(started["verification_uri_complete"])
    assert page.get_by_role("heading", name="Link “Prusa MK4”?").is_visible()
    shoot(page, artifacts, "04-link-approve")
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("heading", name="Approved").wait_for()
    shoot(page, artifacts, "05-link-done")
    time.sleep(max(0.0, started["interval"] + 0.2 - (time.monotonic() - polled)))  # as the plugin waits
    status, granted = api(server, "POST", "/api/v1/link/token", {"device_code": started["device_code"]})
    assert status == 200, granted
    linked_id, linked_key = granted["printer_id"], granted["printer_key"]
    assert linked_key.startswith("hpk_")
    status, _ = api(server, "PUT", "/api/v1/printer/status", printing_status(), key=linked_key)
    assert status == 204

    # 4. A second printer by the manual key: the key is shown once.
    page.goto("/printers/new")
    page.get_by_label("Printer name").fill("Ender 3")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_url(re.compile(r".*/printers/new$"))
    manual_key = page.locator("#printer-key").input_value()
    assert manual_key.startswith("hpk_")
    shoot(page, artifacts, "06-manual-key")
    status, _ = api(server, "PUT", "/api/v1/printer/status", idle_status(), key=manual_key)
    assert status == 204
    page.goto("/printers/new")  # the key page is gone: a fresh form, no key on it
    assert page.locator("#printer-key").count() == 0

    # 5. The dashboard: the card changes live when the printer reports.
    page.goto("/")
    page.wait_for_selector('#live-status[data-live="live"]')
    assert page.locator(".printer-card").count() == 2
    ender = page.locator(".printer-card", has_text="Ender 3")
    ender_id = ender.get_attribute("id").removeprefix("printer-")
    assert ender.locator('[data-role="state"]').inner_text() == "Ready"
    assert card(page, linked_id).locator('[data-role="state"]').inner_text() == "Printing"
    shoot(page, artifacts, "07-dashboard-before")
    phone = new_page(chromium, server, mobile=True)
    log_in(phone, server, USER_EMAIL, USER_PASSWORD)
    phone.wait_for_selector('#live-status[data-live="live"]')
    page.evaluate("() => { window.__notReloaded = true; }")
    status, _ = api(server, "PUT", "/api/v1/printer/status",
                    printing_status(progress=12.0, left=5400, file="gear.gcode"), key=manual_key)
    assert status == 204
    changed = f"() => document.querySelector('#printer-{ender_id} [data-role=state]').textContent === 'Printing'"
    page.wait_for_function(changed)
    phone.wait_for_function(changed)
    assert "gear.gcode" in card(page, ender_id).inner_text()
    assert page.evaluate("() => window.__notReloaded") is True
    shoot(page, artifacts, "08-dashboard-live-desktop")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(phone, artifacts, "09-dashboard-live-phone")
    assert_clean(page)
    assert_clean(phone)
    phone.context.close()

    # 6. A webhook from the ntfy preset, to the real receiver; a test event from the UI.
    page.goto("/webhooks")
    page.get_by_role("link", name="ntfy notification").click()
    page.wait_for_url(re.compile(r".*/webhooks/new\?preset=ntfy$"))
    page.get_by_label("URL", exact=True).fill(receiver.url + "/ntfy")
    # The preset's placeholder topic is refused until the user puts in theirs.
    page.get_by_role("button", name="Save").click()
    assert "YOUR_TOPIC" in page.locator("#body-error").inner_text()
    page.locator("#body").fill(page.locator("#body").input_value().replace("YOUR_TOPIC", "printers"))
    shoot(page, artifacts, "10-webhook-new")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/webhooks/\d+\?done=created$"))
    assert page.get_by_role("status").filter(has_text="The webhook was saved.").is_visible()
    target_path = page.url.removeprefix(server.url).split("?")[0]
    page.get_by_label("Event").select_option(label="Print Done")
    page.get_by_role("button", name="Send test webhook").click()
    page.wait_for_url(re.compile(r".*/webhooks/deliveries/\d+$"))
    (method, path, headers, body) = receiver.wait_for(1)[0]
    assert (method, path) == ("POST", "/ntfy")
    assert "webhook-signature" in {k.lower() for k in headers}
    sent = json.loads(body)
    assert sent["topic"] == "printers" and sent["tags"] == ["printer"]
    shoot(page, artifacts, "11-webhook-delivery")
    page.goto(target_path + "/deliveries")
    deadline = time.monotonic() + 10
    while "delivered" not in page.locator("table.webhooks tbody").inner_text():
        assert time.monotonic() < deadline, page.locator("main").inner_text()
        time.sleep(0.2)
        page.reload()
    row = page.locator("table.webhooks tbody tr").first.inner_text()
    assert "(test)" in row and "delivered" in row
    shoot(page, artifacts, "12-webhook-delivery-log")

    # 7. Delete the account (with the password); the login no longer works.
    page.goto("/account")
    page.locator("#delete_password").fill("not my password at all")
    page.get_by_role("button", name="Delete my account").click()
    page.locator("#delete_password-error").wait_for()
    shoot(page, artifacts, "13-delete-wrong-password")
    page.locator("#delete_password").fill(USER_PASSWORD)
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url(re.compile(r".*/login\?done=deleted$"))
    assert "Your account was deleted." in page.locator("main").inner_text()
    shoot(page, artifacts, "14-deleted")
    page.goto("/login")
    page.get_by_label("Email").fill(USER_EMAIL)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#login-error").wait_for()
    assert page.url.endswith("/login"), page.url
    shoot(page, artifacts, "15-login-refused")
    status, _ = api(server, "PUT", "/api/v1/printer/status", idle_status(), key=manual_key)
    assert status == 401


# --- accessibility with realistic data --------------------------------------------------------


def test_pages_accessible_with_realistic_data(chromium, journey_server, receiver, artifacts):
    server = journey_server
    now = datetime.now(UTC)
    server.set_time_zone(ADMIN_EMAIL, "Europe/Berlin")
    server.add_printer("Prusa MK4", printing_status(), now - timedelta(seconds=5))
    server.add_printer("Ender 3", idle_status(), now - timedelta(seconds=30))
    server.add_printer("Voron 2.4", paused_status(), now - timedelta(hours=2))
    page = new_page(chromium, server)

    page.goto("/login")
    assert_accessible(page)
    shoot(page, artifacts, "login")
    log_in(page, server)
    page.wait_for_selector('#live-status[data-live="live"]')
    assert page.locator(".printer-card").count() == 3
    assert_accessible(page)
    shoot(page, artifacts, "dashboard")

    # webhook targets with deliveries: one delivered, one failing
    targets = []
    for preset, url in (("home_assistant", receiver.url + "/api/webhook/abc"),
                        ("ntfy", "http://127.0.0.1:9/unreachable")):
        page.goto(f"/webhooks/new?preset={preset}")
        page.get_by_label("URL", exact=True).fill(url)
        page.locator("#body").fill(page.locator("#body").input_value().replace("YOUR_TOPIC", "printers"))
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(re.compile(r".*/webhooks/\d+\?done=created$"))
        targets.append(page.url.removeprefix(server.url).split("?")[0])
        for event in ("Print Done", "Print Failed"):
            page.goto(targets[-1])
            page.get_by_label("Event").select_option(label=event)
            page.get_by_role("button", name="Send test webhook").click()
            page.wait_for_url(re.compile(r".*/webhooks/deliveries/\d+$"))
    receiver.wait_for(2)

    page.goto("/webhooks")
    assert page.locator("table.webhooks tbody tr").count() == 2
    assert_accessible(page)
    shoot(page, artifacts, "webhooks-list")
    page.goto(targets[0])
    assert_accessible(page)
    shoot(page, artifacts, "webhook-edit")
    for number, target in enumerate(targets):
        page.goto(target + "/deliveries")
        assert page.locator("table.webhooks tbody tr").count() == 2
        assert_accessible(page)
        shoot(page, artifacts, f"webhook-deliveries-{number}")
    page.locator("table.webhooks tbody a").first.click()
    page.wait_for_url(re.compile(r".*/webhooks/deliveries/\d+$"))
    assert_accessible(page)
    shoot(page, artifacts, "webhook-delivery")

    status, started = api(server, "POST", "/api/v1/link", {"printer_name": "Bambu X1"})
    assert status == 201, started
    page.goto(started["verification_uri_complete"])
    assert page.get_by_role("button", name="Approve").is_visible()
    assert_accessible(page)
    shoot(page, artifacts, "link-approve")
    assert_clean(page)
