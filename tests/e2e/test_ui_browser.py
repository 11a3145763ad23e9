"""Layout with hostile input on a 390-px phone and a desktop: 100-character names without
spaces, a 254-character email, emoji and umlauts. No page may scroll sideways, headings stay in
their cards, the navigation and table actions stay on screen, every page passes axe."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest

from tests.support.browser import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    assert_accessible,
    assert_clean,
    log_in,
    new_page,
    shoot,
)
from tests.support.printers_data import printing_status

pytestmark = pytest.mark.slow

PHONE_390 = {"width": 390, "height": 844}
LONG_NAME = "W" * 100  # the longest printer or webhook name Herald accepts
LONG_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"  # 254 characters
EMOJI_NAME = "Prusa MK4 🖨️ Drücker"


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def box(locator) -> dict:
    locator.wait_for(state="visible")  # the dashboard's cards appear once the live stream has sent them
    found = locator.bounding_box()
    assert found is not None, locator
    return found


def fits_card(page, heading_selector: str) -> None:
    """The heading ends inside the card around it (it wraps instead of overflowing)."""
    heading = page.locator(heading_selector).first
    card = heading.locator("xpath=ancestor::*[contains(concat(' ', @class, ' '), ' card ')][1]")
    inner, outer = box(heading), box(card)
    assert inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1, (inner, outer)
    assert heading.evaluate("h => h.scrollWidth <= h.clientWidth + 1")


def test_long_names_fit_a_390px_phone_and_pages_pass_axe(chromium, herald_server, artifacts):
    assert len(LONG_EMAIL) == 254
    fresh_id, _ = herald_server.add_printer(EMOJI_NAME, None, None)  # first: test events use it
    long_id, _ = herald_server.add_printer(LONG_NAME, printing_status(), datetime.now(UTC))
    herald_server.create_admin(LONG_EMAIL, ADMIN_PASSWORD)
    with sqlite3.connect(herald_server.db_path) as db:
        db.execute("UPDATE users SET email_verified_at = NULL WHERE email = ?", (LONG_EMAIL,))

    page = new_page(chromium, herald_server, viewport=PHONE_390, mobile=True)
    log_in(page, herald_server)

    # The navigation wraps: Account and Admin are on screen without scrolling sideways.
    for name in ("Account", "Admin"):
        link = page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)
        assert link.is_visible()
        where = box(link)
        assert where["x"] >= 0 and where["x"] + where["width"] <= PHONE_390["width"], name

    # A webhook with a long name whose body carries emoji and umlauts, and a test delivery.
    page.goto("/webhooks/new?preset=blank")
    page.get_by_label("Name").fill(LONG_NAME)
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/" + "x" * 200)
    page.locator("#body").fill('{"text": "@printer.name fertig"}')
    page.get_by_role("checkbox", name=re.compile(EMOJI_NAME)).check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/webhooks/\d+\?done=created$"))
    target_path = page.url.removeprefix(herald_server.url).split("?")[0]
    page.get_by_label("Event").select_option(label="Print Done")
    page.get_by_role("button", name="Send test webhook").click()
    page.wait_for_url(re.compile(r".*/webhooks/deliveries/\d+$"))
    delivery_path = page.url.removeprefix(herald_server.url)
    body = page.locator("pre.payload").nth(1).inner_text()
    assert f"{EMOJI_NAME} fertig" in body and "\\u" not in body
    shoot(page, artifacts, "delivery-390")

    # A new printer key for a 100-character name: the heading stays in its card.
    page.goto("/printers/new")
    page.get_by_label("Printer name").fill(LONG_NAME)
    page.get_by_role("button", name="Create key").click()
    page.wait_for_selector("#printer-key")
    assert page_width(page) <= PHONE_390["width"]
    fits_card(page, "h1")
    shoot(page, artifacts, "key-390")
    assert_accessible(page)

    # The verification page for a 254-character address.
    page.goto("/admin/users")
    row = page.locator("tr", has_text=LONG_EMAIL[:64])
    row.get_by_role("button", name="Get verification link").click()
    link = page.locator("#verification-link").input_value()
    page.goto(link)
    assert page_width(page) <= PHONE_390["width"]
    fits_card(page, "h1")
    shoot(page, artifacts, "verify-390")
    assert_accessible(page)

    # Admin → Users: the delete action of every user is on screen, and asks first.
    page.goto("/admin/users")
    for email in (ADMIN_EMAIL, LONG_EMAIL):
        action = page.locator("tr", has_text=email[:64]).get_by_role("link", name=re.compile("^Delete"))
        where = box(action)
        assert 0 <= where["x"] and where["x"] + where["width"] <= PHONE_390["width"], email
    shoot(page, artifacts, "users-390")
    page.locator("tr", has_text=LONG_EMAIL[:64]).get_by_role("link", name=re.compile("^Delete")).click()
    page.get_by_role("heading", name=re.compile("^Delete a+@")).wait_for()
    assert "cannot be undone" in page.locator("main").inner_text()
    fits_card(page, "h2#delete-heading")
    page.get_by_role("link", name="Keep the user").click()
    page.wait_for_url(re.compile(r".*/admin/users$"))
    assert page.locator("tr", has_text=LONG_EMAIL[:64]).count() == 1

    pages = ["/", "/printers", f"/printers/{long_id}", f"/printers/{long_id}/rotate",
             f"/printers/{long_id}/remove", f"/printers/{fresh_id}", "/webhooks", target_path,
             target_path + "/deliveries", delivery_path, "/account", "/alexa/setup", "/admin/users",
             "/admin/invites", "/admin/mail", "/admin/system"]
    for path in pages:
        page.goto(path)
        assert page_width(page) <= PHONE_390["width"], f"{path} is {page_width(page)} px wide"
        assert_accessible(page)
    assert_clean(page)


def test_long_names_on_desktop_keep_columns_and_card_titles(chromium, herald_server, artifacts):
    long_id, _ = herald_server.add_printer(LONG_NAME, printing_status(), datetime.now(UTC))
    herald_server.add_printer(EMOJI_NAME, None, None)
    page = new_page(chromium, herald_server)
    log_in(page, herald_server, ADMIN_EMAIL)

    # Dashboard: the long title gets the card's width, not a sliver beside the badge.
    card = page.locator(f"#printer-{long_id}")
    title, head = box(card.locator("h2")), box(card.locator(".printer-card-head"))
    assert title["width"] >= 0.9 * head["width"], (title, head)
    assert "Waiting for first check-in" in page.locator(".printer-card", has_text="Drücker").inner_text()
    shoot(page, artifacts, "dashboard-desktop")

    # /printers: the Link, State and Last seen columns stay inside the table's box.
    page.goto("/printers")
    wrap = box(page.locator(".table-wrap"))
    for header in ("Link", "State", "Last seen"):
        cell = box(page.get_by_role("columnheader", name=header))
        assert cell["x"] + cell["width"] <= wrap["x"] + wrap["width"] + 1, header
    fresh_row = page.locator("tr", has_text="Drücker").inner_text()
    assert "waiting for first check-in" in fresh_row and "offline" not in fresh_row
    assert re.search(r"just now|minute", page.locator("tr", has_text="WWWW").inner_text())
    shoot(page, artifacts, "printers-desktop")

    # The printer page's settings: rename, new key and remove are apart, one below the other.
    page.goto(f"/printers/{long_id}")
    rename = box(page.get_by_role("button", name="Save names"))
    new_key = box(page.get_by_role("link", name="Make a new key…"))
    remove = box(page.get_by_role("link", name="Remove printer…"))
    assert new_key["y"] >= rename["y"] + rename["height"] + 16
    assert remove["y"] >= new_key["y"] + new_key["height"] + 16
    shoot(page, artifacts, "printer-settings")
    page.get_by_role("link", name="Make a new key…").click()
    assert "stops working at once" in page.locator("main").inner_text()
    assert_accessible(page)
    assert_clean(page)
