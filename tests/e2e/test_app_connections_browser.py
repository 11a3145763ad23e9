"""An app's whole App Connection in a real browser, and what the app does with it afterwards.

Chromium (Playwright's sync API) against the real ``herald serve``: the app's start URL, the
login, the printer, the consent, and the custom-scheme completion URL, captured from the
consent form's redirect and never followed. The URL is then parsed as OctoPod and as
Mobileraker parse it, and the app API is called with the token: info, a notification webhook
set and tested against a real receiver (tests/support/webhooks.py) and fed by a real event, a
live link opened logged out, and a revoke that turns the token into 604.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.browser import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    assert_clean,
    new_page,
    seeded_server,
    shoot,
)
from tests.support.printers_data import printing_status
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.slow

LOCAL_IP = "192.168.1.20"


class ThreadedReceiver:
    """tests/support/webhooks.Receiver on a loop of its own (the test thread belongs to Playwright)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.receiver = Receiver()

    def __enter__(self) -> ThreadedReceiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def wait_for(self, count: int, timeout: float = 20.0):
        return asyncio.run_coroutine_threadsafe(self.receiver.wait_for(count, timeout=timeout, path="/notify"),
                                                self.loop).result(timeout + 5)


@pytest.fixture
def app_server(tmp_path):
    env = {"HERALD_LIVE_HEARTBEAT": "60", "HERALD_SIGNUP_MODE": "closed",
           "HERALD_WEBHOOK_RETRY_SCHEDULE": "1,1"}
    yield from seeded_server(tmp_path, env)


@pytest.fixture
def receiver():
    with ThreadedReceiver() as running:
        yield running


def relay(url: str, bearer: str) -> int:
    """What a request to the connection's relay address answers (the relay itself is another issue)."""
    request = urllib.request.Request(url + "/api/version", headers={"Authorization": f"Bearer {bearer}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def call(server, method: str, path: str, *, token: str | None = None, body: dict | None = None,
         bearer: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["AppToken"] = token
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(server.url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


# --- the completion URL as each app reads it ---------------------------------------------------


OCTOPOD_REQUIRED = ("url", "printername", "authbasichttpuser", "authbasichttppassword")


def parse_as_octopod(url: str) -> dict[str, str]:
    """OctoPod (AddOctoEverywherePrinterViewController): exact names; success must be "true", then
    url, printername and the lower-case Basic pair are all required; octoPrintApiKey is optional."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query.get("success") == "true"
    missing = [name for name in OCTOPOD_REQUIRED if not query.get(name)]
    assert not missing, f"OctoPod would ignore the completion: missing {missing}"
    return {"url": query["url"], "user": query["authbasichttpuser"], "password": query["authbasichttppassword"],
            "name": query["printername"], "api_key": query.get("octoPrintApiKey", ""),
            "app_token": query["appApiToken"], "local_ip": query.get("printerLastKnownLocalIp", "")}


MOBILERAKER_REQUIRED = ("appApiToken", "authbasichttpuser", "authbasichttppassword", "authBearerToken", "id", "url")


def parse_as_mobileraker(url: str) -> dict[str, str]:
    """Mobileraker: exact names (its AppPortalResult), every one of them required."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    missing = [name for name in MOBILERAKER_REQUIRED if not query.get(name)]
    assert not missing, f"Mobileraker would refuse the completion: missing {missing}"
    return {name: query[name] for name in MOBILERAKER_REQUIRED}


def signature_ok(secret: str, received) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(part == f"v1,{expected}" for part in received.headers["webhook-signature"].split())


def test_octopod_connects_through_the_portal_and_uses_the_app_api(chromium, app_server, receiver, artifacts):
    status = {**printing_status(), "local_ip": LOCAL_IP}
    printer_id, key = app_server.add_printer("Voron 2.4", status, datetime.now(UTC))
    app_server.push_status(key, status)

    # the app opens its start URL as OctoPod builds it (appid, authType, an http logo Herald does
    # not load, OctoPrintApiKeyAppName), plus a printerId and the extras other apps send
    start = "/appportal/v1/?" + urlencode({
        "appid": "octopod", "authType": "enhanced", "appLogoUrl": "http://octopod.example/octopod.png",
        "returnUrl": "octopod://octoeverywhere", "OctoPrintApiKeyAppName": "OctoPod-OctoEverywhere-123",
        "printerid": printer_id, "moonraker": "true", "formatVersion": "1"})
    page = new_page(chromium, app_server)
    page.goto(app_server.url + start)
    page.wait_for_url(re.compile(r".*/login\?next=.*"))
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/appportal/v1/\?.*"))
    assert page.get_by_role("heading", name="Connect OctoPod to a printer").is_visible()
    assert page.get_by_label(re.compile("Voron 2.4")).is_checked()  # printerId preselects it
    shoot(page, artifacts, "1-pick-printer")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r".*/appportal/v1/consent\?.*"))
    assert page.get_by_role("heading", name="Allow OctoPod to use Voron 2.4?").is_visible()
    shoot(page, artifacts, "2-consent")
    assert_clean(page)

    # the completion redirect goes to octopod://: capture it, do not follow it
    captured: list[str] = []

    def capture(route):
        if route.request.method != "POST":
            return route.continue_()
        answer = route.fetch(max_redirects=0)
        captured.append(answer.headers["location"])
        return route.fulfill(status=200, content_type="text/plain", body="back to the app")

    page.route("**/appportal/v1/consent", capture)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_function("() => document.body.innerText.includes('back to the app')")
    assert len(captured) == 1
    completion = captured[0]
    assert completion.startswith("octopod://octoeverywhere?")

    octopod = parse_as_octopod(completion)
    mobileraker = parse_as_mobileraker(completion)
    assert octopod["name"] == "Voron 2.4" and octopod["local_ip"] == LOCAL_IP
    assert octopod["url"] == mobileraker["url"]
    assert octopod["user"] == mobileraker["authbasichttpuser"]
    assert octopod["api_key"] == ""  # minted only where the printer's owner allowed it in the plugin
    token = octopod["app_token"]
    # the relay address takes the Bearer credential; with no tunnel from the printer it says so (601)
    assert octopod["url"].startswith(app_server.url + "/relay/app-")  # an IP address: the path form
    assert relay(octopod["url"], mobileraker["authBearerToken"]) == 601
    assert relay(octopod["url"], "hcb_wrong") == 401

    # the app API with the token
    code, info = call(app_server, "GET", "/api/appconnection/info", token=token)
    assert code == 200 and info["Status"] == 200 and info["Error"] == ""
    assert info["Result"]["PrinterName"] == "Voron 2.4"
    assert info["Result"]["PrinterLocalIp"] == LOCAL_IP
    assert info["Result"]["IsOnline"] is True

    # a notification webhook: set, tested (EventType 16), then fed by a real print.done (EventType 2)
    code, set_answer = call(app_server, "POST", "/api/appconnection/SetNotificationWebhook", body={
        "AppToken": token, "WebhookUrl": receiver.receiver.url + "/notify", "InclusiveEventTypesFilter": [2, 3]})
    assert code == 200, set_answer
    secret = set_answer["Result"]["SigningSecret"]
    code, _ = call(app_server, "POST", "/api/appconnection/TestWebhook", token=token)
    assert code == 200
    test = receiver.wait_for(1)[0]
    assert json.loads(test.body)["EventType"] == 16 and signature_ok(secret, test)
    code, _ = call(app_server, "POST", "/api/v1/printer/events", bearer=key, body={
        "id": str(uuid.uuid4()), "type": "print.done", "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {"name": "benchy.gcode", "path": "benchy.gcode", "origin": "local", "time": 3600},
        "printer_data": {"state": {"text": "Operational"}, "job": {"file": {"name": "benchy.gcode"}},
                         "progress": {"completion": 100}}})
    assert code == 202
    done = receiver.wait_for(2)[1]
    body = json.loads(done.body)
    assert body["EventType"] == 2 and body["PrinterName"] == "Voron 2.4" and body["FileName"] == "benchy.gcode"
    assert signature_ok(secret, done)

    # a live link, opened by someone who is not logged in
    app_server.push_status(key, status)
    code, live = call(app_server, "POST", "/api/live/createfromappconnection", token=token,
                      body={"ExpirationHours": 2, "EndWhenCurrentPrintIsComplete": False})
    assert code == 200 and live["Result"]["LiveId"]
    stranger = new_page(chromium, app_server)
    stranger.goto(live["Result"]["Url"])
    assert stranger.get_by_role("heading", name="Voron 2.4").is_visible()
    assert "Printing" in stranger.locator("#live-state").inner_text()
    assert stranger.locator("#live-progress").inner_text().endswith("%")
    shoot(stranger, artifacts, "3-live-link-logged-out")
    assert_clean(stranger)
    stranger.goto(app_server.url + "/account/apps")
    assert "/login" in stranger.url  # the live link gave no access to anything else

    # the owner revokes it under Connected apps: the token answers 604 at once
    page.unroute("**/appportal/v1/consent")
    page.goto(app_server.url + "/account/apps")
    assert page.get_by_role("heading", name="OctoPod · Voron 2.4").is_visible()
    shoot(page, artifacts, "4-connected-apps")
    page.get_by_role("button", name="Revoke OctoPod on Voron 2.4").click()
    page.wait_for_url(re.compile(r".*/account/apps\?revoked=OctoPod"))
    code, revoked = call(app_server, "GET", "/api/appconnection/info", token=token)
    assert code == 604 and revoked["Status"] == 604 and "revoked" in revoked["Error"]
    assert relay(octopod["url"], mobileraker["authBearerToken"]) == 604
    assert_clean(page)


def test_cancel_returns_to_mobileraker_with_success_false(chromium, app_server, artifacts):
    app_server.add_printer("Ender 3", None, None)
    page = new_page(chromium, app_server)
    page.goto(app_server.url + "/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/$"))
    page.goto(app_server.url + "/appportal/v1/?appId=mobileraker&returnUrl=mobileraker://octoeverywhere")
    page.get_by_role("button", name="Continue").click()  # its only printer is picked already
    captured: list[str] = []

    def capture(route):
        if route.request.method != "POST":
            return route.continue_()
        captured.append(route.fetch(max_redirects=0).headers["location"])
        return route.fulfill(status=200, content_type="text/plain", body="back to the app")

    page.route("**/appportal/v1/consent", capture)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_function("() => document.body.innerText.includes('back to the app')")
    assert captured == ["mobileraker://octoeverywhere?success=false"]
    # a return URL outside the app's prefixes is a page, never a redirect
    page.unroute("**/appportal/v1/consent")
    response = page.goto(app_server.url + "/appportal/v1/?appId=mobileraker&returnUrl=https://evil.example/")
    assert response.status == 400
    assert page.get_by_role("heading", name="This app cannot connect").is_visible()
    shoot(page, artifacts, "refused-return-url")
