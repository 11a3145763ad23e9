"""The dashboard in a real browser: Chromium against the real server under hypercorn."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.browser import (
    ADMIN_EMAIL,
    PHONE,
    assert_accessible,
    assert_clean,
    log_in,
    new_page,
    shoot,
)
from tests.support.printers_data import idle_status, paused_status, printing_status

pytestmark = pytest.mark.slow


def seed_three(server) -> dict[str, str]:
    now = datetime.now(UTC)
    server.set_time_zone(ADMIN_EMAIL, "Europe/Berlin")
    ids, keys = {}, {}
    ids["prusa"], keys["prusa"] = server.add_printer("Prusa MK4", printing_status(), now - timedelta(seconds=5))
    ids["ender"], keys["ender"] = server.add_printer("Ender 3", idle_status(), now - timedelta(seconds=30))
    ids["voron"], keys["voron"] = server.add_printer("Voron 2.4", paused_status(), now - timedelta(hours=2))
    return ids, keys


def card(page, printer_id: str):
    return page.locator(f"#printer-{printer_id}")


# A long heartbeat: a card that changes at once was pushed by the status listener,
# not picked up by the stream's periodic resync.
@pytest.mark.herald_env(HERALD_LIVE_HEARTBEAT="60")
def test_dashboard_shows_three_printers_and_changes_live(chromium, herald_server, artifacts):
    ids, keys = seed_three(herald_server)
    page = new_page(chromium, herald_server)
    log_in(page, herald_server)
    page.wait_for_selector('#live-status[data-live="live"]')

    assert page.locator(".printer-card").count() == 3
    prusa, ender, voron = (card(page, ids[k]) for k in ("prusa", "ender", "voron"))
    assert prusa.locator('[data-role="state"]').inner_text() == "Printing"
    assert "benchy.gcode" in prusa.inner_text() and "42 %" in prusa.inner_text()
    assert "done at" in prusa.inner_text() and "210.1 / 210 °C" in prusa.inner_text()
    assert prusa.locator("progress").get_attribute("value") == "42.5"
    assert ender.locator('[data-role="state"]').inner_text() == "Ready"
    assert "Failed" in ender.inner_text() and "30 seconds" not in ender.inner_text()
    assert voron.locator('[data-role="state"]').inner_text() == "Offline"
    assert "Last known: Paused" in voron.inner_text() and "2 hours ago" in voron.inner_text()
    shoot(page, artifacts, "dashboard-desktop")
    assert_accessible(page)

    # A status arrives: the card changes in place, without a reload.
    page.evaluate("() => { window.__notReloaded = true; }")
    herald_server.push_status(keys["ender"], printing_status(progress=12.0, left=5400, file="gear.gcode"))
    page.wait_for_function(
        f"() => document.querySelector('#printer-{ids['ender']} [data-role=state]').textContent === 'Printing'")
    assert "gear.gcode" in ender.inner_text() and "12 %" in ender.inner_text()
    assert "1 h 30 min" in ender.inner_text() or "1 h 29 min" in ender.inner_text()
    assert page.evaluate("() => window.__notReloaded") is True
    assert page.locator("#live-announcer").inner_text() == "Ender 3: Printing"
    shoot(page, artifacts, "dashboard-desktop-after-update")
    assert_clean(page)

    phone = new_page(chromium, herald_server, mobile=True, color_scheme="dark")
    log_in(phone, herald_server)
    phone.wait_for_selector('#live-status[data-live="live"]')
    # nothing sideways on a 360-px screen
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(20, 23, 27)"
    shoot(phone, artifacts, "dashboard-phone-dark")
    assert_accessible(phone)
    assert_clean(phone)


def test_card_goes_offline_after_silence_without_a_push(chromium, herald_server):
    now = datetime.now(UTC)
    # offline_after is 300 s: seen 296 s ago, the page itself flips it a few seconds later
    printer_id, _ = herald_server.add_printer("Mini", idle_status(), now - timedelta(seconds=296))
    page = new_page(chromium, herald_server)
    log_in(page, herald_server)
    state = card(page, printer_id).locator('[data-role="state"]')
    assert state.inner_text() == "Ready"
    page.wait_for_function(
        f"() => document.querySelector('#printer-{printer_id} [data-role=state]').textContent === 'Offline'",
        timeout=15_000)
    assert "is-offline" in card(page, printer_id).get_attribute("class")
    assert_clean(page)


@pytest.mark.herald_env(HERALD_LIVE_HEARTBEAT="60")
def test_dashboard_reconnects_after_a_server_restart(chromium, herald_server, artifacts):
    printer_id, key = herald_server.add_printer("Prusa MK4", idle_status(), datetime.now(UTC))
    page = new_page(chromium, herald_server)
    log_in(page, herald_server)
    page.wait_for_selector('#live-status[data-live="live"]')
    page.evaluate("() => { window.__notReloaded = true; }")

    started = time.monotonic()
    assert herald_server.stop() == 0, herald_server.log()
    # the open event stream ended at once: hypercorn did not wait out its graceful timeout
    assert time.monotonic() - started < 5
    page.wait_for_selector('#live-status[data-live="reconnecting"]')
    herald_server.start()
    page.wait_for_selector('#live-status[data-live="live"]', timeout=20_000)

    herald_server.push_status(key, printing_status(progress=64.0))
    page.wait_for_function(
        f"() => document.querySelector('#printer-{printer_id} [data-role=percent]')?.textContent === '64 %'")
    assert page.evaluate("() => window.__notReloaded") is True
    shoot(page, artifacts, "dashboard-after-restart")
    # the only errors allowed are the browser's reports of the refused reconnects
    assert all("events/dashboard" in error or "ERR_CONNECTION_REFUSED" in error
               for error in page.herald_errors), page.herald_errors


def test_new_user_sees_how_to_link_and_login_page_is_accessible(chromium, herald_server, artifacts):
    page = new_page(chromium, herald_server)
    page.goto(herald_server.url + "/login")
    assert_accessible(page)
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#login-error")
    shoot(page, artifacts, "login-error")
    assert_accessible(page)
    page.herald_errors.clear()  # the 400 of the wrong password was the point

    log_in(page, herald_server)
    empty = page.locator("#dashboard-empty")
    assert empty.is_visible()
    assert herald_server.url in empty.inner_text() and "Link this printer" in empty.inner_text()
    shoot(page, artifacts, "dashboard-empty")
    assert_accessible(page)
    # keyboard: the skip link comes first and is visible when focused
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    # a printer linked meanwhile appears without a reload
    herald_server.add_printer("Fresh", None, None)
    page.wait_for_selector(".printer-card")
    assert empty.is_hidden()
    assert "Waiting for first check-in" in page.locator(".printer-card").inner_text()
    assert_clean(page)


PAGES = ["/", "/printers", "/printers/{id}", "/printers/new", "/printers/{id}/remove", "/link", "/account",
         "/account/apps", "/alexa/setup", "/webhooks", "/webhooks/new",
         "/admin/users", "/admin/invites", "/admin/signup", "/admin/mail", "/admin/home-assistant", "/admin/system"]


def test_every_page_fits_a_phone_and_passes_axe(chromium, herald_server, artifacts):
    """The design system on every area's pages: no sideways scrolling at 360 px, no serious
    axe-core finding, no console error or CSP violation, in light and dark."""
    ids, keys = seed_three(herald_server)
    herald_server.push_status(keys["prusa"], printing_status(progress=50.0))
    for mobile, scheme in ((True, "dark"), (False, "light")):
        page = new_page(chromium, herald_server, mobile=mobile, color_scheme=scheme)
        log_in(page, herald_server)
        for template in PAGES:
            path = template.format(id=ids["prusa"])
            page.goto(herald_server.url + path)
            if mobile:
                assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], path
            assert_accessible(page)
        assert_clean(page)
    shoot(page, artifacts, "admin-system-desktop")
