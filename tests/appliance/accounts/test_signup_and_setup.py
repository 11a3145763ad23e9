"""First run (setup link), signup in each mode, invites, email verification by SMTP and by the log."""

from __future__ import annotations

import logging

import pytest

from appliance.accounts.models import EmailToken, Invite, SetupToken, User
from appliance.accounts.setup import ensure_setup_link
from appliance.accounts.users import PURPOSE_EMAIL, admin_verification_link, issue_email_token
from appliance.core.runtime_settings import set_runtime
from tests.support.accounts import csrf_of, links_in, mail_body, post_form
from tests.support.smtp import SMTPServer
from tests.support.users import PASSWORD, login, make_user

NEW_PASSWORD = "a long enough new passphrase"


@pytest.fixture
def maillog(caplog):
    caplog.set_level(logging.INFO)
    return caplog


# --- first run -----------------------------------------------------------------------------


async def test_setup_link_is_logged_at_start_and_only_it_creates_the_first_admin(app, client, herald, maillog):
    started = "\n".join(record.getMessage() for record in maillog.get_records("setup"))
    (link_token,) = links_in(started, "setup")  # the app's start printed it
    row = await SetupToken.get(name="first_admin")
    assert link_token not in row.token_hash and link_token not in row.token_encrypted  # stored hashed/encrypted
    # The same link again at the next start, until it is used.
    assert await ensure_setup_link(herald) == f"http://herald.test/setup/{link_token}"

    # A stranger: open signup makes plain users, guessed setup links are refused.
    await set_runtime(herald, "signup_mode", "open")
    response = await post_form(client, "/signup", {"email": "mallory@example.com", "password": PASSWORD},
                               page="/signup")
    assert response.status_code == 302
    assert not (await User.get(email="mallory@example.com")).is_admin
    response = await post_form(client, "/setup/not-the-token", {"email": "mallory2@example.com",
                                                                "password": PASSWORD})
    assert response.status_code == 404
    assert (await client.get("/setup/not-the-token")).status_code == 404
    assert (await client.get("/admin/users")).status_code == 403  # mallory is logged in, not admin
    assert not await User.filter(is_admin=True).exists()

    # The owner with the logged link.
    owner = app.test_client()
    assert (await owner.get(f"/setup/{link_token}")).status_code == 200
    response = await post_form(owner, f"/setup/{link_token}", {"email": "owner@example.com", "password": PASSWORD},
                               page=f"/setup/{link_token}")
    # The new admin lands on the dashboard, told what to do next.
    assert response.status_code == 302 and response.headers["Location"] == "/?welcome=setup"
    welcome = await (await owner.get("/?welcome=setup")).get_data(as_text=True)
    assert "Welcome to Herald" in welcome and "link your first printer" in welcome
    admin = await User.get(email="owner@example.com")
    assert admin.is_admin and admin.email_verified_at is not None
    assert (await owner.get("/admin/users")).status_code == 200
    # Single use: the link is gone, and no link is printed any more.
    assert (await client.get(f"/setup/{link_token}")).status_code == 404
    assert not await SetupToken.exists()
    assert await ensure_setup_link(herald) is None


async def test_lost_setup_link_is_regenerated(app, herald):
    first = await ensure_setup_link(herald)
    await SetupToken.all().delete()
    second = await ensure_setup_link(herald)
    assert second and second != first
    # A data directory whose key changed cannot decrypt the old token: a new one replaces it.
    await SetupToken.filter(name="first_admin").update(token_encrypted="garbage")
    third = await ensure_setup_link(herald)
    assert third and third not in (first, second)
    assert await SetupToken.all().count() == 1


async def test_no_setup_link_once_an_admin_exists(app, herald, client):
    link = await ensure_setup_link(herald)
    await make_user("admin@example.com", admin=True)
    assert await ensure_setup_link(herald) is None
    assert (await client.get(link.removeprefix("http://herald.test"))).status_code == 404


# --- signup modes ---------------------------------------------------------------------------


async def test_signup_open_creates_unverified_user_and_logs_link_without_smtp(app, client, herald, clock,
                                                                                  maillog):
    await set_runtime(herald, "signup_mode", "open")
    response = await post_form(client, "/signup", {"email": "Bea@Example.com", "password": PASSWORD},
                               page="/signup")
    assert response.status_code == 302, await response.get_data(as_text=True)
    user = await User.get(email="bea@example.com")
    assert user.email_verified_at is None and not user.is_admin
    page = await (await client.get("/account?welcome=1")).get_data(as_text=True)
    assert "not confirmed" in page and "written to its log" in page
    (token,) = links_in(maillog.text, "verify")
    record = await EmailToken.get(user=user)
    assert token not in record.token_hash and record.purpose == "verify"
    assert (record.expires_at - clock.now()).total_seconds() == pytest.approx(24 * 3600, abs=5)

    # The link shows what it would confirm; the button confirms it.
    response = await client.get(f"/verify/{token}")
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    assert "Confirm bea@example.com" in page and f'action="/verify/{token}"' in page
    await user.refresh_from_db()
    assert user.email_verified_at is None
    response = await post_form(client, f"/verify/{token}", {}, page=f"/verify/{token}")
    assert response.status_code == 200
    assert "Address confirmed" in await response.get_data(as_text=True)
    await user.refresh_from_db()
    assert user.email_verified_at is not None
    # Single use, on either method.
    for method in ("GET", "POST"):
        response = await post_form(client, f"/verify/{token}", {}) if method == "POST" else \
            await client.get(f"/verify/{token}")
        assert response.status_code == 400, method
        assert "used already" in await response.get_data(as_text=True)


async def test_signup_validates_fields_next_to_them(app, client, herald):
    await set_runtime(herald, "signup_mode", "open")
    response = await post_form(client, "/signup", {"email": "bea@example.com", "password": "short pw"},
                               page="/signup")
    assert response.status_code == 400
    html = await response.get_data(as_text=True)
    assert 'id="password-error"' in html and "12 characters" in html
    response = await post_form(client, "/signup", {"email": "not an email", "password": PASSWORD}, page="/signup")
    assert 'id="email-error"' in await response.get_data(as_text=True)
    await make_user("taken@example.com")
    response = await post_form(client, "/signup", {"email": "taken@example.com", "password": PASSWORD},
                               page="/signup")
    assert response.status_code == 409
    assert await User.all().count() == 1


async def test_signup_closed_refuses_everyone(app, client, herald):
    await set_runtime(herald, "signup_mode", "closed")
    assert (await client.get("/signup")).status_code == 403
    response = await post_form(client, "/signup", {"email": "bea@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert not await User.exists()


async def test_signup_invite_mode_needs_a_valid_single_use_invite(app, client, herald, clock):
    assert (await client.get("/signup")).status_code == 403  # invite is the default mode
    response = await post_form(client, "/signup", {"email": "bea@example.com", "password": PASSWORD})
    assert response.status_code == 403
    admin = await make_user("admin@example.com", admin=True)
    admin_client = app.test_client()
    await login(admin_client, "admin@example.com")
    response = await post_form(admin_client, "/admin/invites", {"note": "for Bea", "days": "2"}, page="/admin/invites")
    assert response.status_code == 201
    (token,) = links_in(await response.get_data(as_text=True), "invite")
    invite = await Invite.get(note="for Bea")
    assert invite.created_by_id == admin.id and token not in invite.token_hash
    # The listing does not show the link again.
    assert token not in await (await admin_client.get("/admin/invites")).get_data(as_text=True)

    assert (await client.get(f"/invite/{token}")).status_code == 200
    response = await post_form(client, "/signup", {"email": "bea@example.com", "password": PASSWORD,
                                                   "invite": token}, page=f"/invite/{token}")
    assert response.status_code == 302
    bea = await User.get(email="bea@example.com")
    await invite.refresh_from_db()
    assert invite.used_by_id == bea.id
    other = app.test_client()
    response = await post_form(other, "/signup", {"email": "carl@example.com", "password": PASSWORD,
                                                  "invite": token}, page="/login")
    assert response.status_code == 400
    assert not await User.filter(email="carl@example.com").exists()

    # Expiry, and revocation.
    response = await post_form(admin_client, "/admin/invites", {"note": "late", "days": "1"}, page="/admin/invites")
    (late,) = links_in(await response.get_data(as_text=True), "invite")
    clock.advance(86400 + 1)
    assert (await other.get(f"/invite/{late}")).status_code == 400
    response = await post_form(admin_client, "/admin/invites", {"note": "revoked", "days": "3"}, page="/admin/invites")
    (revoked,) = links_in(await response.get_data(as_text=True), "invite")
    invite = await Invite.get(note="revoked")
    response = await post_form(admin_client, f"/admin/invites/{invite.id}/revoke", {}, page="/admin/invites")
    assert response.status_code == 302
    assert (await other.get(f"/invite/{revoked}")).status_code == 400


# --- verification ------------------------------------------------------------------------------


async def test_verification_mail_through_a_real_smtp_server(app, client, herald):
    await set_runtime(herald, "signup_mode", "open")
    with SMTPServer() as smtp:
        for name, value in smtp.settings().items():
            await set_runtime(herald, name, value)
        response = await post_form(client, "/signup", {"email": "bea@example.com", "password": PASSWORD},
                                   page="/signup")
        assert response.status_code == 302
        (message,) = await smtp.wait_for(1)
        assert message["To"] == "bea@example.com"
        (token,) = links_in(mail_body(message), "verify")
        # Asking again sends a new link, and the old one stops working.
        response = await post_form(client, "/account/verify", {}, page="/account")
        assert response.status_code == 302
        messages = await smtp.wait_for(2)
        (newer,) = links_in(mail_body(messages[1]), "verify")
    assert (await client.get(f"/verify/{token}")).status_code == 400
    assert (await post_form(client, f"/verify/{token}", {})).status_code == 400
    assert (await client.get(f"/verify/{newer}")).status_code == 200
    assert (await User.get(email="bea@example.com")).email_verified_at is None
    assert (await post_form(client, f"/verify/{newer}", {}, page=f"/verify/{newer}")).status_code == 200
    assert (await User.get(email="bea@example.com")).email_verified_at is not None


async def test_verification_link_expires_after_24_hours(app, client, herald, clock, maillog):
    await set_runtime(herald, "signup_mode", "open")
    await post_form(client, "/signup", {"email": "bea@example.com", "password": PASSWORD}, page="/signup")
    (token,) = links_in(maillog.text, "verify")
    csrf = await csrf_of(client, f"/verify/{token}")  # the page as it was before the link expired
    clock.advance(24 * 3600 + 1)
    response = await client.get(f"/verify/{token}")
    assert response.status_code == 400
    assert "expired" in await response.get_data(as_text=True)
    response = await client.post(f"/verify/{token}", form={"csrf_token": csrf})
    assert response.status_code == 400
    assert "expired" in await response.get_data(as_text=True)
    assert (await User.get(email="bea@example.com")).email_verified_at is None


async def test_opening_a_verification_link_does_not_use_it(app, client, herald, maillog):
    """Mail scanners and link previews fetch every link in a mail; only the user's click confirms."""
    user = await make_user("bea@example.com", verified=False)
    link = await admin_verification_link(herald, user)
    (token,) = links_in(link, "verify")
    scanner = app.test_client()
    for _ in range(3):
        response = await scanner.get(f"/verify/{token}")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
    assert (await scanner.head(f"/verify/{token}")).status_code == 200
    assert (await EmailToken.get(user=user)).used_at is None
    # A POST needs the form's CSRF token: without it, or with another one, nothing happens.
    response = await scanner.post(f"/verify/{token}", form={})
    assert response.status_code == 403
    response = await scanner.post(f"/verify/{token}", form={"csrf_token": "forged"})
    assert response.status_code == 403
    await user.refresh_from_db()
    assert user.email_verified_at is None and (await EmailToken.get(user=user)).used_at is None
    # The user's click, in another browser, still works.
    response = await post_form(client, f"/verify/{token}", {}, page=f"/verify/{token}")
    assert response.status_code == 200
    assert "bea@example.com is confirmed" in await response.get_data(as_text=True)
    await user.refresh_from_db()
    assert user.email_verified_at is not None


async def test_unknown_and_outdated_verification_links_get_a_clear_4xx(app, client, herald):
    user = await make_user("bea@example.com", verified=False)
    for token in ("not-a-token", "x" * 200):
        response = await client.get(f"/verify/{token}")
        assert response.status_code == 400 and "Link not valid" in await response.get_data(as_text=True)
        assert (await post_form(client, f"/verify/{token}", {})).status_code == 400
    # A link for an address the account no longer has confirms nothing.
    (token,) = links_in(await admin_verification_link(herald, user), "verify")
    await User.filter(id=user.id).update(email="bea@new.example")
    assert (await client.get(f"/verify/{token}")).status_code == 400
    assert (await post_form(client, f"/verify/{token}", {})).status_code == 400
    await user.refresh_from_db()
    assert user.email_verified_at is None
    # An address-change link whose address another account took meanwhile: 409 on both methods.
    token = await issue_email_token(user, PURPOSE_EMAIL, clock=herald.clock, email="bea@other.example")
    await make_user("bea@other.example")
    response = await client.get(f"/verify/{token}")
    assert response.status_code == 409 and "Another account uses" in await response.get_data(as_text=True)
    assert (await post_form(client, f"/verify/{token}", {})).status_code == 409
    assert (await User.get(id=user.id)).email == "bea@new.example"


async def test_admin_gets_a_verification_link_for_an_unverified_user(app, client, herald):
    await make_user("admin@example.com", admin=True)
    user = await make_user("bea@example.com", verified=False)
    await login(client, "admin@example.com")
    page = await (await client.get("/admin/users")).get_data(as_text=True)
    assert f"/admin/users/{user.id}/verification-link" in page
    response = await post_form(client, f"/admin/users/{user.id}/verification-link", {}, page="/admin/users")
    assert response.status_code == 200
    (token,) = links_in(await response.get_data(as_text=True), "verify")
    bea = app.test_client()
    assert (await bea.get(f"/verify/{token}")).status_code == 200
    assert (await post_form(bea, f"/verify/{token}", {}, page=f"/verify/{token}")).status_code == 200
    await user.refresh_from_db()
    assert user.email_verified_at is not None
    response = await post_form(client, f"/admin/users/{user.id}/verification-link", {}, page="/admin/users")
    assert response.status_code == 409  # already verified


async def test_verification_mails_are_rate_limited_per_account(app, client, herald):
    await make_user("bea@example.com", verified=False)
    await login(client, "bea@example.com")
    statuses = []
    for _ in range(5):
        response = await post_form(client, "/account/verify", {}, page="/account")
        statuses.append(response.status_code)
    assert statuses[:3] == [302, 302, 302]
    assert statuses[3] == 429
    assert int(response.headers["Retry-After"]) > 0
    assert await EmailToken.filter(purpose="verify").count() == 1  # only the newest link is kept
