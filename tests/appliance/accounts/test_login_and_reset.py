"""Logging in (throttled, fresh session ids, cookie flags) and password reset without account enumeration."""

from __future__ import annotations

import logging

from appliance.accounts.models import EmailToken, LoginSession
from appliance.core.runtime_settings import set_runtime
from tests.support.accounts import links_in, mail_body, post_form
from tests.support.smtp import SMTPServer
from tests.support.users import PASSWORD, csrf_from, login, make_user

NEW_PASSWORD = "a long enough new passphrase"


async def _try_login(client, email: str, password: str, headers=None, peer: str | None = None):
    token = await csrf_from(client, "/login")
    extra = {"scope_base": {"client": (peer, 40000)}} if peer else {}
    return await client.post("/login", form={"email": email, "password": password, "csrf_token": token},
                             headers=headers, **extra)


async def test_failed_logins_lock_only_that_address_out_of_that_account(app, client, clock):
    await make_user()
    await make_user("bob@example.com")
    attacker, owner = "192.0.2.10", "198.51.100.20"
    for _ in range(5):
        response = await _try_login(client, "ada@example.com", "wrong password!!", peer=attacker)
        assert response.status_code == 400
    response = await _try_login(client, "ada@example.com", PASSWORD, peer=attacker)  # even the right one waits
    assert response.status_code == 429
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= 900
    # Minutes for a person, rounded up; the exact seconds stay in Retry-After for programs.
    assert f"try again in {-(-retry // 60)} minutes or reset your password" in await response.get_data(as_text=True)
    # The owner, from another address, is not locked out by someone else's failures.
    owner_client = app.test_client()
    assert (await _try_login(owner_client, "ada@example.com", PASSWORD, peer=owner)).status_code == 302
    # Nor is another account from the locked address.
    assert (await _try_login(app.test_client(), "bob@example.com", PASSWORD, peer=attacker)).status_code == 302
    clock.advance(retry)
    assert (await _try_login(app.test_client(), "ada@example.com", PASSWORD, peer=attacker)).status_code == 302


async def test_a_successful_login_clears_only_its_own_address_failures(app, client):
    await make_user()
    for _ in range(4):
        assert (await _try_login(client, "ada@example.com", "wrong password!!", peer="192.0.2.1")).status_code == 400
    assert (await _try_login(app.test_client(), "ada@example.com", PASSWORD, peer="192.0.2.1")).status_code == 302
    for _ in range(4):  # four more from that address: the count started again at the success
        assert (await _try_login(client, "ada@example.com", "wrong password!!", peer="192.0.2.1")).status_code == 400
    assert (await _try_login(app.test_client(), "ada@example.com", PASSWORD, peer="192.0.2.1")).status_code == 302


async def test_failed_logins_from_many_addresses_hit_the_per_account_backstop(app, client, clock, caplog):
    caplog.set_level(logging.INFO)
    await make_user()
    # 99 failures from 20 addresses (under 5 per address, 20 per address): not yet locked.
    for n in range(99):
        response = await _try_login(client, "ada@example.com", "wrong password!!", peer=f"203.0.113.{n // 5}")
        assert response.status_code == 400, n
    assert (await _try_login(app.test_client(), "ada@example.com", PASSWORD, peer="198.51.100.1")).status_code == 302
    assert "from many addresses" not in caplog.text
    # The 100th locks the account from every address, the owner's included, and says so in the log.
    response = await _try_login(client, "ada@example.com", "wrong password!!", peer="203.0.113.19")
    assert response.status_code == 400
    assert "'ada@example.com' from many addresses reached 100 in 15 minutes" in caplog.text
    response = await _try_login(app.test_client(), "ada@example.com", PASSWORD, peer="198.51.100.2")
    assert response.status_code == 429
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= 900 and "try again in" in await response.get_data(as_text=True)
    # Other accounts are not affected.
    await make_user("bob@example.com")
    assert (await _try_login(app.test_client(), "bob@example.com", PASSWORD, peer="198.51.100.2")).status_code == 302
    clock.advance(retry)
    assert (await _try_login(app.test_client(), "ada@example.com", PASSWORD, peer="198.51.100.2")).status_code == 302


async def test_password_reset_lifts_the_accounts_login_limits(app, client, caplog):
    caplog.set_level(logging.INFO)
    await make_user()
    await make_user("bob@example.com")
    # Locked from one address (5 failures), and from all by the backstop (100 from 20 addresses).
    for n in range(100):
        await _try_login(client, "ada@example.com", "wrong password!!", peer=f"203.0.113.{n // 5}")
    for peer in ("203.0.113.0", "198.51.100.7"):
        assert (await _try_login(client, "ada@example.com", PASSWORD, peer=peer)).status_code == 429
    # Bob's failures from one of those addresses are his own and stay counted.
    for _ in range(5):
        await _try_login(client, "bob@example.com", "wrong password!!", peer="198.51.100.9")
    await post_form(client, "/reset", {"email": "ada@example.com"}, page="/reset")
    (token,) = links_in(caplog.text, "reset")
    response = await post_form(client, f"/reset/{token}", {"password": NEW_PASSWORD}, page=f"/reset/{token}")
    assert response.status_code == 302
    # Both lifted: the address that failed five times and any other address get in at once.
    assert (await _try_login(app.test_client(), "ada@example.com", NEW_PASSWORD, peer="203.0.113.0")).status_code == 302
    assert (await _try_login(app.test_client(), "ada@example.com", NEW_PASSWORD, peer="198.51.100.7")).status_code == 302
    assert (await _try_login(app.test_client(), "bob@example.com", PASSWORD, peer="198.51.100.9")).status_code == 429


async def test_failed_logins_are_throttled_per_client_address(app, client):
    await make_user()
    for i in range(20):
        response = await _try_login(client, f"nobody{i}@example.com", "wrong password!!", peer="192.0.2.5")
        assert response.status_code == 400
    response = await _try_login(client, "ada@example.com", PASSWORD, peer="192.0.2.5")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert "Too many failed logins" in await response.get_data(as_text=True)
    # Credential stuffing from one address does not lock the accounts it named for others.
    response = await _try_login(app.test_client(), "ada@example.com", PASSWORD, peer="192.0.2.6")
    assert response.status_code == 302


async def test_forwarded_for_is_believed_only_from_trusted_proxies(app, client, herald):
    herald.settings = herald.settings.replace(trusted_proxies="10.0.0.0/8")
    await make_user()
    # A peer that is not a trusted proxy: every try counts for the peer's own address,
    # whatever X-Forwarded-For claims.
    for i in range(20):
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}
        response = await _try_login(client, f"x{i}@example.com", "wrong password!!", headers, peer="192.0.2.1")
        assert response.status_code == 400
    response = await _try_login(client, "ada@example.com", PASSWORD, {"X-Forwarded-For": "203.0.113.99"},
                                peer="192.0.2.1")
    assert response.status_code == 429
    # Behind a trusted proxy the forwarded address counts: each client has its own budget.
    for i in range(20):
        headers = {"X-Forwarded-For": f"203.0.113.{i % 2}"}
        await _try_login(client, f"y{i}@example.com", "wrong password!!", headers, peer="10.1.2.3")
    response = await _try_login(client, "ada@example.com", PASSWORD, {"X-Forwarded-For": "198.51.100.5"},
                                peer="10.1.2.3")
    assert response.status_code == 302
    response = await _try_login(app.test_client(), "ada@example.com", PASSWORD,
                                {"X-Forwarded-For": "203.0.113.1"}, peer="10.1.2.3")
    assert response.status_code == 302  # 10 failures from .1: under the limit of 20


async def test_cookie_is_secure_when_public_url_is_https(app, client, herald):
    herald.settings = herald.settings.replace(public_url="https://herald.test")
    await make_user()
    response = await _try_login(client, "ada@example.com", PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


async def test_login_sets_httponly_lax_cookie_with_a_new_session_id(app, client):
    await make_user()
    client.set_cookie("localhost", "herald_session", "attacker-chosen-value")
    response = await _try_login(client, "ada@example.com", PASSWORD)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # http public URL
    first = cookie.split(";")[0].split("=", 1)[1]
    assert first != "attacker-chosen-value" and len(first) >= 40
    # Logging in again while logged in gives a new session id and ends the old session.
    response = await client.post("/login", form={"email": "ada@example.com", "password": PASSWORD,
                                                 "csrf_token": await csrf_from(client, "/")})
    second = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert second != first
    assert await LoginSession.all().count() == 1


async def test_password_reset_by_mail_ends_every_session(app, client, herald):
    user = await make_user()
    other_device = app.test_client()
    await login(other_device)
    with SMTPServer() as smtp:
        for name, value in smtp.settings().items():
            await set_runtime(herald, name, value)
        response = await post_form(client, "/reset", {"email": "ADA@example.com"}, page="/reset")
        assert response.status_code == 200
        known = await response.get_data(as_text=True)
        (message,) = await smtp.wait_for(1)
        response = await post_form(client, "/reset", {"email": "nobody@example.com"}, page="/reset")
        unknown = await response.get_data(as_text=True)
        assert response.status_code == 200
        # No enumeration: the same answer (bar the echoed address), and no mail for the unknown one.
        assert known.replace("ada@example.com", "X") == unknown.replace("nobody@example.com", "X")
        assert len(smtp.messages) == 1
    (token,) = links_in(mail_body(message), "reset")
    record = await EmailToken.get(purpose="reset")
    assert record.user_id == user.id and token not in record.token_hash
    for _ in range(3):  # opening the link (a mail scanner, a preview, the user) does not use it
        assert (await client.get(f"/reset/{token}")).status_code == 200
    assert (await EmailToken.get(purpose="reset")).used_at is None
    response = await post_form(client, f"/reset/{token}", {"password": "too short"}, page=f"/reset/{token}")
    assert response.status_code == 400
    response = await post_form(client, f"/reset/{token}", {"password": NEW_PASSWORD}, page=f"/reset/{token}")
    assert response.status_code == 302 and response.headers["Location"] == "/login?done=reset"
    assert not await LoginSession.filter(user_id=user.id).exists()
    assert (await other_device.get("/account")).status_code == 302  # logged out
    response = await client.get(f"/reset/{token}")  # single use
    assert response.status_code == 400 and "used already" in await response.get_data(as_text=True)
    assert (await _try_login(client, "ada@example.com", PASSWORD)).status_code == 400
    assert (await _try_login(client, "ada@example.com", NEW_PASSWORD)).status_code == 302


async def test_reset_link_expires_and_log_path_works_without_smtp(app, client, clock, caplog):
    caplog.set_level(logging.INFO)
    await make_user()
    await post_form(client, "/reset", {"email": "ada@example.com"}, page="/reset")
    (token,) = links_in(caplog.text, "reset")
    clock.advance(24 * 3600 + 1)
    assert (await client.get(f"/reset/{token}")).status_code == 400
    response = await post_form(client, f"/reset/{token}", {"password": NEW_PASSWORD}, page="/reset")
    assert response.status_code == 400


async def test_reset_mails_are_rate_limited_per_account_and_address(app, client, caplog):
    caplog.set_level(logging.INFO)
    await make_user()
    statuses = [(await post_form(client, "/reset", {"email": "ada@example.com"}, page="/reset")).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # The same limit applies to an address without an account: a 429 reveals nothing.
    statuses = [(await post_form(client, "/reset", {"email": "nobody@example.com"}, page="/reset")).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Per client address: 10 per hour whichever accounts are named.
    response = None
    for i in range(5):
        response = await post_form(client, "/reset", {"email": f"n{i}@example.com"}, page="/reset")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert len(links_in(caplog.text, "reset")) == 3



async def test_simultaneous_guesses_cannot_pass_the_limit_together(app, herald):
    """A burst of guesses sent at once: only five get their password checked; counting
    each attempt only after its (slow) check let every one of them through."""
    import asyncio

    from appliance.accounts import users as accounts
    from appliance.core.errors import RateLimited

    await make_user("ada@example.com")
    results = await asyncio.gather(*(
        accounts.login(herald, "ada@example.com", f"guess number {n}", address="203.0.113.9") for n in range(20)),
        return_exceptions=True)
    checked = [r for r in results if r is None]
    throttled = [r for r in results if isinstance(r, RateLimited)]
    assert (len(checked), len(throttled)) == (5, 15), results
    # The owner, elsewhere, still gets in; and a right password gives its attempt back.
    assert await accounts.login(herald, "ada@example.com", PASSWORD, address="198.51.100.1") is not None
    for _ in range(5):
        assert await accounts.login(herald, "ada@example.com", PASSWORD, address="198.51.100.1") is not None
