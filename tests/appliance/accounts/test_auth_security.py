"""The probe's findings on who is asking: CSRF with any Authorization header, and the login's next=."""

from __future__ import annotations

import re

import pytest

from appliance.accounts.routes import safe_next
from tests.support.users import PASSWORD, csrf_from, login, make_user

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def _path(rule) -> str:
    return re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "1", rule.rule)


async def test_a_made_up_bearer_header_does_not_skip_csrf_on_cookie_routes(app, client):
    """Every state-changing route the cookie authenticates refuses a request without the CSRF
    token, whatever Authorization header it carries; routes that take a Bearer token take
    that token as the one credential and refuse the made-up one (401), never the cookie."""
    await make_user(admin=True)
    await login(client)
    checked: dict[str, int] = {}
    quart_app = app.app
    for rule in quart_app.url_map.iter_rules():
        view = quart_app.view_functions[rule.endpoint]
        if getattr(view, "_herald_csrf_exempt", False):
            continue
        for method in sorted(set(rule.methods or ()) & set(UNSAFE)):
            path = _path(rule)
            response = await client.open(path, method=method, headers={"Authorization": "Bearer hat_madeup"},
                                         form={"confirm": "on", "password": PASSWORD})
            expected = 401 if getattr(view, "_herald_accepts_bearer", False) else 403
            assert response.status_code == expected, f"{method} {path}: {response.status_code}"
            checked[f"{method} {path}"] = response.status_code
    # the routes the probe named are among them
    for name in ("POST /oauth/authorize", "POST /account/delete", "POST /account/password",
                 "POST /webhooks/new", "POST /api/v1/webhooks"):
        assert name in checked, sorted(checked)
    assert list(checked.values()).count(403) >= 29
    # and the cookie still works with its token
    token = await csrf_from(client, "/account")
    response = await client.post("/webhooks/new", form={"csrf_token": token, "name": "x", "url": "https://example.com/h"},
                                 headers={"Authorization": "Bearer hat_madeup"})
    assert response.status_code in (302, 422)


async def test_a_bearer_view_never_falls_back_to_the_cookie(app, client):
    await make_user()
    await login(client)
    response = await client.post("/api/v1/webhooks", json={"name": "x", "url": "https://example.com/h"},
                                 headers={"Authorization": "Bearer not-a-hat-token"})
    assert response.status_code == 401


@pytest.mark.parametrize("target", [
    "//evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example", "/%5Cevil.example",
    "/%2F%2Fevil.example", "/\t/evil.example", "/\n/evil.example", "https://evil.example/",
    "http:evil.example", "/%09/evil.example", " //evil.example", "/ /evil.example", "javascript:alert(1)",
    "evil.example", "",
])
def test_safe_next_refuses_every_spelling_of_another_origin(target):
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/printers/abc", "/oauth/authorize?client_id=x&redirect_uri=https%3A%2F%2Fa.b%2F"])
def test_safe_next_keeps_same_origin_paths(target):
    assert safe_next(target) == target


async def test_login_does_not_redirect_to_a_backslash_host(app, client):
    await make_user()
    token = await csrf_from(client, "/login")
    response = await client.post("/login", form={"email": "ada@example.com", "password": PASSWORD,
                                                 "csrf_token": token, "next": "/\\evil.example"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
