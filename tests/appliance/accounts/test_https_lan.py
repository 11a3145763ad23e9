"""An https Herald opened over plain http (a LAN address), and X-Forwarded-Proto from proxies.

With an https public URL the cookies are Secure, so a browser on http://<lan-address>
never sends them back: every form then failed with "The form has expired". Herald now
says why and where to go; it believes a proxy's X-Forwarded-Proto only when the proxy
is trusted (HERALD_TRUSTED_PROXIES).
"""

from __future__ import annotations

import pytest

from tests.support.users import make_user

PUBLIC = "https://herald.example.net"
# The test client's requests come from no address unless given one: this is the proxy's.
FROM_PROXY = {"client": ("127.0.0.1", 40000)}


@pytest.fixture
def settings(settings):
    # The test client connects from 127.0.0.1 over plain http.
    return settings.replace(public_url=PUBLIC, trusted_proxies=["127.0.0.1"])


async def test_login_page_over_plain_http_says_to_use_the_https_address(client):
    page = await (await client.get("/login?next=/printers")).get_data(as_text=True)
    assert "set up for https" in page
    assert f'href="{PUBLIC}/login?next=/printers"' in page


async def test_form_posted_over_plain_http_explains_the_cookies_not_the_expired_form(client):
    await make_user("ada@example.com")
    response = await client.post("/login", form={"email": "ada@example.com", "password": "x" * 12})
    assert response.status_code == 403
    text = await response.get_data(as_text=True)
    assert "plain http" in text and f"{PUBLIC}/login" in text
    assert "form has expired" not in text


async def test_a_trusted_proxys_https_is_believed(client):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    response = await client.get("/login", headers=headers, scope_base=FROM_PROXY)
    page = await response.get_data(as_text=True)
    assert "set up for https" not in page
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


async def test_plain_http_gets_no_hsts(client):
    response = await client.get("/login")
    assert "Strict-Transport-Security" not in response.headers


async def test_an_untrusted_peer_cannot_claim_https(client):
    # Straight from a LAN machine (not the trusted proxy) with a made-up header.
    headers = {"X-Forwarded-Proto": "https"}
    response = await client.get("/login", headers=headers, scope_base={"client": ("192.0.2.50", 40000)})
    assert "set up for https" in await response.get_data(as_text=True)
    assert "Strict-Transport-Security" not in response.headers
