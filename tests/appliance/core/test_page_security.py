"""Every GET route, for an admin and for a visitor: security headers, and no inline script or style."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.support.printers_data import three_printers
from tests.support.sse import sse
from tests.support.users import login, make_user

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Values for URL parameters of routes that take them; unknown ones get a placeholder
# (a 404 page must be just as clean).
STREAMS = {"dashboard.events"}


class InlineCode(HTMLParser):
    """Collects <script> elements with a body or without src, on* handlers, style= and <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = {name.lower(): value for name, value in attrs}
        for name in names:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> event handler attribute")
            if name == "style":
                self.problems.append(f"<{tag} style=...> inline style")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("<script> without src")
        for name in ("href", "src", "action", "formaction"):
            if (names.get(name) or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append(f"inline script body: {data.strip()[:60]!r}")


def problems_in(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.problems


def test_the_checker_finds_each_kind_of_inline_code():
    assert problems_in('<p>ok</p><script src="/static/js/herald.js" defer></script>') == []
    assert len(problems_in('<script>alert(1)</script>')) == 2
    assert problems_in('<button onclick="x()">') == ["<button onclick=...> event handler attribute"]
    assert problems_in('<div style="color:red">') == ["<div style=...> inline style"]
    assert problems_in('<a href="javascript:void(0)">') == ["<a href=javascript:...>"]
    assert problems_in("<style>p{}</style>") == ["<style> element"]


def assert_secure(response, where: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "script-src 'self'" in csp, where
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, where
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, f"{where}: {name}"


def get_routes(app) -> list:
    return [rule for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())]


def fill(rule, values: dict[str, str]) -> str:
    path = rule.rule
    for argument in rule.arguments:
        path = re.sub(rf"<(?:[^:<>]+:)?{argument}>", values.get(argument, "no-such-thing"), path)
    return path


async def crawl(app, client, values: dict[str, str]) -> list[str]:
    seen = []
    for rule in get_routes(app.app):
        if rule.endpoint in STREAMS:
            continue
        path = fill(rule, values)
        response = await client.get(path)
        where = f"GET {path} ({rule.endpoint}) -> {response.status_code}"
        # App Connections answer OctoEverywhere's 6xx codes (docs/apps.md), which apps switch on
        app_code = rule.endpoint.startswith("apps.") and response.status_code in (601, 603, 604)
        assert response.status_code < 500 or app_code, where
        assert_secure(response, where)
        if response.mimetype == "text/html":
            body = await response.get_data(as_text=True)
            assert problems_in(body) == [], f"{where}: {problems_in(body)}"
        seen.append(path)
    return seen


async def test_every_get_route_is_secure_for_admin_and_visitor(app, client, clock):
    admin = await make_user("admin@example.com", admin=True)
    printers = await three_printers(admin, clock.now())
    values = {"filename": "herald.css", "printer_id": printers[0].id, "id": printers[0].id,
              "user_id": str(admin.id)}
    visitor_paths = await crawl(app, app.test_client(), values)
    assert "/" in visitor_paths and "/login" in visitor_paths
    await login(client, "admin@example.com")
    admin_paths = await crawl(app, client, values)
    assert admin_paths == visitor_paths
    # the dashboard really was rendered with the printers (not a redirect)
    page = await client.get("/")
    assert page.status_code == 200 and "Prusa MK4" in await page.get_data(as_text=True)
    for script in ("js/herald.js", "js/dashboard.js"):
        assert_secure(await client.get(f"/static/{script}"), script)
    async with sse(client, "/events/dashboard") as stream:
        await stream.next_of("snapshot")
        assert_secure(stream.connection, "/events/dashboard")


async def test_error_pages_are_clean_too(client):
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert_secure(response, "404")
    assert problems_in(await response.get_data(as_text=True)) == []
