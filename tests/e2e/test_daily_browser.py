"""Daily use in Chromium at 1280 and 390 px: the browser's time zone, the webhook form's checks and its
folded OAuth part, phone tables that neither cut off nor break URLs mid-word, one duration format,
the Dashboard heading, and the plugin version on the printer page. The CSP stays clean throughout."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from octoprint_herald.version import __version__

from tests.support.browser import (
    DESKTOP,
    assert_accessible,
    assert_clean,
    log_in,
    new_page,
    seeded_server,
    shoot,
)
from tests.support.pictures import png
from tests.support.printers_data import printing_status

pytestmark = pytest.mark.slow

PHONE_390 = {"width": 390, "height": 844}
ROOT = Path(__file__).resolve().parents[2]
CARRIED = "9.0.0"  # the plugin this Herald carries: newer than the printer's
LONG_URL = "https://hooks.example.com/services/automation/printers/" + "segment/" * 6 + "?token=abcdefghijklmnop&x=1"


@pytest.fixture
def herald_server(tmp_path: Path):
    source = tmp_path / "plugin"
    shutil.copytree(ROOT / "plugin", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    version = source / "octoprint_herald" / "version.py"
    version.write_text(version.read_text().replace(f'"{__version__}"', f'"{CARRIED}"'))
    yield from seeded_server(tmp_path, {"HERALD_LIVE_HEARTBEAT": "1", "HERALD_SIGNUP_MODE": "open",
                                        "HERALD_PLUGIN_SOURCE": str(source)})


def _put_picture(server, kind: str, key: str, data: bytes, media_type: str, job_file: str = "") -> int:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": media_type}
    if job_file:
        headers["X-Herald-Job-File"] = job_file
    request = urllib.request.Request(f"{server.url}/api/v1/printer/pictures/{kind}", method="PUT", data=data,
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def _post(server, path: str, key: str, body: dict) -> int:
    request = urllib.request.Request(server.url + path, method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def line_breaks(page, selector: str) -> dict:
    """How often the text of ``selector`` wraps, and the characters each side of every line break
    that is not after / . ? & = or a space (a URL broken mid-word)."""
    return page.evaluate("""(selector) => {
        const el = document.querySelector(selector);
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        const chars = [];
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let i = 0; i < node.length; i++) {
                const range = document.createRange();
                range.setStart(node, i); range.setEnd(node, i + 1);
                const rect = range.getBoundingClientRect();
                if (rect.width || rect.height) chars.push([node.data[i], rect.top]);
            }
        }
        const bad = [];
        let breaks = 0;
        for (let i = 1; i < chars.length; i++) {
            if (chars[i][1] > chars[i - 1][1] + 2) {
                breaks++;
                if (!"/.?&= ".includes(chars[i - 1][0])) bad.push(chars[i - 1][0] + "|" + chars[i][0]);
            }
        }
        return {breaks: breaks, bad: bad};
    }""", selector)


def test_time_zone_comes_from_the_browser_at_signup_and_login(chromium, herald_server, artifacts):
    # Signup from a browser in Sydney: the new account shows times there at once.
    page = new_page(chromium, herald_server, viewport=PHONE_390, mobile=True, time_zone="Australia/Sydney")
    page.goto(herald_server.url + "/signup")
    page.get_by_label("Email").fill("sydney@example.com")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r".*/account\?welcome=1$"))
    assert page.locator("#time_zone").input_value() == "Australia/Sydney"
    assert "Taken from your browser" in page.locator("#tz-heading").locator("xpath=..").inner_text()
    shoot(page, artifacts, "account-time-zone-390")
    assert_accessible(page)
    assert_clean(page)

    # The admin logs in from New York; the zone list is searchable (a datalist of IANA names).
    page = new_page(chromium, herald_server, viewport=DESKTOP, time_zone="America/New_York")
    log_in(page, herald_server)
    page.goto(herald_server.url + "/account")
    field = page.locator("#time_zone")
    assert field.input_value() == "America/New_York"
    assert field.get_attribute("list") == "time-zones"
    assert page.locator("#time-zones option[value='Europe/Berlin']").count() == 1
    field.fill("Asia/Tokyo")
    page.get_by_role("button", name="Save time zone").click()
    page.wait_for_url(re.compile(r".*/account\?done=time_zone$"))
    shoot(page, artifacts, "account-time-zone-1280")
    assert_clean(page)
    # Chosen once, kept: logging in from Berlin does not move it.
    berlin = new_page(chromium, herald_server, viewport=DESKTOP, time_zone="Europe/Berlin")
    log_in(berlin, herald_server)
    berlin.goto(herald_server.url + "/account")
    assert berlin.locator("#time_zone").input_value() == "Asia/Tokyo"
    assert_clean(berlin)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE_390], ids=["1280", "390"])
def test_webhook_form_catches_placeholders_and_path_typos_and_folds_oauth(chromium, herald_server, artifacts,
                                                                         viewport):
    width = viewport["width"]
    page = new_page(chromium, herald_server, viewport=viewport, mobile=width < 500)
    log_in(page, herald_server)
    page.goto(herald_server.url + "/webhooks/new?preset=ntfy")
    oauth = page.locator("details.oauth")
    assert oauth.get_attribute("open") is None and not page.get_by_label("Token URL").is_visible()
    form_height = page.locator("form.webhook-form").bounding_box()["height"]
    shoot(page, artifacts, f"webhook-form-{width}")
    page.locator("details.oauth summary").click()
    assert page.get_by_label("Token URL").is_visible()
    opened = page.locator("form.webhook-form").bounding_box()["height"]
    assert opened > form_height + 200, (form_height, opened)  # the OAuth part is most of the length
    page.locator("details.oauth summary").click()

    # The preset as it comes: refused, naming each placeholder.
    page.get_by_label("Name").fill("Phone alerts")
    page.get_by_role("button", name="Save").click()
    page.locator("#body-error").wait_for()
    assert "YOUR_TOPIC" in page.locator("#body-error").inner_text()
    assert "ntfy server" in page.locator("#url-error").inner_text()
    # The server set, the topic set, but a typo deep in a path: refused with the fix.
    page.get_by_label("URL", exact=True).fill("https://ntfy.sh/")
    page.locator("#body").fill('{"topic": "printers", "message": "@message: @job.file.nam"}')
    page.get_by_role("button", name="Save").click()
    page.locator("#body-error").wait_for()
    assert "did you mean @job.file.name?" in page.locator("#body-error").inner_text()
    shoot(page, artifacts, f"webhook-form-typo-{width}")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.locator("#body").fill('{"topic": "printers", "message": "@message: @job.file.name"}')
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/webhooks/\d+\?done=created$"))
    assert_accessible(page)
    # The refused saves answered 422, as they should; nothing else (no CSP violation, no script error).
    assert [e for e in page.herald_errors if "422" not in e] == [], page.herald_errors


def test_phone_tables_wrap_urls_between_parts_and_show_every_attempt_column(chromium, herald_server, artifacts):
    herald_server.add_printer("Prusa MK4", None, None)
    page = new_page(chromium, herald_server, viewport=PHONE_390, mobile=True)
    log_in(page, herald_server)
    page.goto(herald_server.url + "/webhooks/new?preset=blank")
    page.get_by_label("Name").fill("Automation")
    page.get_by_label("URL", exact=True).fill(LONG_URL)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/webhooks/\d+\?done=created$"))
    page.get_by_label("Event").select_option(label="Print Done")
    page.get_by_role("button", name="Send test webhook").click()
    page.wait_for_url(re.compile(r".*/webhooks/deliveries/\d+$"))
    delivery = page.url

    page.goto(herald_server.url + "/webhooks")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    cell = page.locator("td.url").first
    where = cell.bounding_box()
    assert where["x"] >= 0 and where["x"] + where["width"] <= 390
    wrapped = line_breaks(page, "td.url")
    assert wrapped["breaks"] >= 2 and wrapped["bad"] == [], wrapped  # it wraps, between the URL's parts
    shoot(page, artifacts, "webhooks-390")
    assert_accessible(page)

    # The delivery's attempts: every column on screen, none behind a sideways scroll.
    for _ in range(60):
        page.goto(delivery)
        if page.locator("table.webhooks tbody tr").count():
            break
        page.wait_for_timeout(500)
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth + 1")
    for label in ("Time", "Status", "Latency", "Response or error"):
        cell = page.locator(f"table.webhooks td[data-label='{label}']").first
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, label
    shoot(page, artifacts, "delivery-attempts-390")
    assert_accessible(page)
    assert_clean(page)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE_390], ids=["1280", "390"])
def test_dashboard_heading_durations_and_plugin_version(chromium, herald_server, artifacts, viewport):
    width = viewport["width"]
    page = new_page(chromium, herald_server, viewport=viewport, mobile=width < 500)
    log_in(page, herald_server)
    # No printers yet: the tab and the heading agree, and the example address uses Herald's port.
    nav = page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard", exact=True)
    assert nav.is_visible()
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"
    assert "http://192.168.1.20:8080" in page.locator("#loopback-warning").inner_text()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Printers", exact=True).click()
    assert page.get_by_role("heading", level=1).inner_text() == "Printers"

    printer_id, key = herald_server.add_printer("Prusa MK4", printing_status(), datetime.now(UTC))
    assert _post(herald_server, "/api/v1/printer/verify", key, {"plugin_version": __version__}) == 200
    now = datetime.now(UTC).isoformat()
    for kind, payload in (("print.started", {"name": "benchy.gcode"}),
                          ("print.done", {"name": "benchy.gcode", "time": 3900})):
        assert _post(herald_server, "/api/v1/printer/events", key,
                     {"id": str(uuid.uuid4()), "type": kind, "occurred_at": now, "payload": payload}) == 202
    # Pictures: the slicer's preview of the running job and a webcam snapshot (a real JPEG,
    # made by the browser itself).
    thumbnail = png(300, 300, (230, 120, 30))
    webcam = page.screenshot(type="jpeg", quality=70, clip={"x": 0, "y": 0, "width": 320, "height": 240})
    job_file = printing_status()["job"]["file"]
    assert _put_picture(herald_server, "thumbnail", key, thumbnail, "image/png", job_file) == 204
    assert _put_picture(herald_server, "webcam", key, webcam, "image/jpeg") == 204
    page.goto(herald_server.url + "/")
    card_pictures = page.locator(".printer-card [data-role='pictures'] img")
    card_pictures.first.wait_for()
    assert card_pictures.count() == 2
    assert all(img.evaluate("i => i.complete && i.naturalWidth > 0") for img in card_pictures.all())
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    shoot(page, artifacts, f"dashboard-pictures-{width}")
    assert_accessible(page)

    page.goto(f"{herald_server.url}/printers/{printer_id}")
    pictures = page.locator("section[aria-labelledby='pictures-heading'] img")
    assert pictures.count() == 2
    assert all(img.evaluate("i => i.complete && i.naturalWidth > 0") for img in pictures.all())
    summary = page.locator(".printer-summary").inner_text()
    assert f"plugin {__version__}" in summary
    behind = page.locator("#plugin-behind")
    assert behind.is_visible() and __version__ in behind.inner_text() and CARRIED in behind.inner_text()
    page.locator("table.jobs td", has_text="1 h 5 min").first.wait_for()  # not "1 h 5 min" vs "0 h 1 min"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    shoot(page, artifacts, f"printer-plugin-version-{width}")
    assert_accessible(page)
    assert_clean(page)
