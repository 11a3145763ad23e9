"""Account settings: address, password, time zone, personal access tokens (page and JSON), deleting the account."""

from __future__ import annotations

import logging
import uuid

from appliance.accounts.models import AccessToken, EmailToken, LoginSession, User
from appliance.accounts.users import issue_email_token
from appliance.oauth.models import AuthorizationCode
from appliance.printers.models import Event, Job, LinkRequest, Printer
from tests.support.accounts import links_in, post_form
from tests.support.users import PASSWORD, login, make_user

NEW_PASSWORD = "a long enough new passphrase"


async def test_change_password_ends_other_sessions_only(app, client):
    await make_user()
    other = app.test_client()
    await login(other)
    csrf = await login(client)
    response = await client.post("/account/password", form={"current_password": "wrong password!!",
                                                             "password": NEW_PASSWORD, "csrf_token": csrf})
    assert response.status_code == 400
    assert 'id="current_password-error"' in await response.get_data(as_text=True)
    response = await client.post("/account/password", form={"current_password": PASSWORD,
                                                             "password": NEW_PASSWORD, "csrf_token": csrf})
    assert response.status_code == 302
    assert (await client.get("/account")).status_code == 200  # this session lives on
    assert (await other.get("/account")).status_code == 302  # the other one ended
    assert await LoginSession.all().count() == 1


async def test_change_email_needs_confirmation_of_the_new_address(app, client, caplog):
    caplog.set_level(logging.INFO)
    user = await make_user()
    await make_user("taken@example.com")
    csrf = await login(client)
    response = await client.post("/account/email", form={"email": "taken@example.com",
                                                          "current_password": PASSWORD, "csrf_token": csrf})
    assert response.status_code == 409 and 'id="new_email-error"' in await response.get_data(as_text=True)
    response = await client.post("/account/email", form={"email": "ada@new.example",
                                                          "current_password": PASSWORD, "csrf_token": csrf})
    assert response.status_code == 302
    await user.refresh_from_db()
    assert user.email == "ada@example.com"  # unchanged until confirmed
    assert "ada@new.example" in await (await client.get("/account")).get_data(as_text=True)
    (token,) = links_in(caplog.text, "verify")
    page = await (await client.get(f"/verify/{token}")).get_data(as_text=True)
    assert "Confirm ada@new.example" in page and "keeps its current address" in page
    await user.refresh_from_db()
    assert user.email == "ada@example.com"  # opening the link is not confirming it
    response = await post_form(client, f"/verify/{token}", {}, page=f"/verify/{token}")
    assert response.status_code == 200
    await user.refresh_from_db()
    assert user.email == "ada@new.example" and user.email_verified_at is not None


async def test_time_zone_is_validated_against_iana_names(app, client):
    user = await make_user()
    csrf = await login(client)
    for bad in ("Mars/Olympus", "../../etc/passwd", "", "europe/berlin"):
        response = await client.post("/account/time-zone", form={"time_zone": bad, "csrf_token": csrf})
        assert response.status_code == 400, bad
        assert 'id="time_zone-error"' in await response.get_data(as_text=True)
    response = await client.post("/account/time-zone", form={"time_zone": "Europe/Berlin", "csrf_token": csrf})
    assert response.status_code == 302
    await user.refresh_from_db()
    assert user.time_zone == "Europe/Berlin"
    body = await (await client.get("/api/v1/me")).get_json()
    assert body == {"id": user.id, "email": "ada@example.com", "email_verified": True, "time_zone": "Europe/Berlin"}


async def test_login_adopts_the_browsers_time_zone_until_the_user_chooses_one(app, client):
    from tests.support.users import csrf_from

    user = await make_user()

    async def log_in_from(zone: str) -> None:
        browser = app.test_client()  # a browser of its own, logged out
        token = await csrf_from(browser, "/login")
        html = await (await browser.get("/login")).get_data(as_text=True)
        assert 'name="browser_time_zone"' in html and "js/browser-zone.js" in html
        response = await browser.post("/login", form={"email": "ada@example.com", "password": PASSWORD,
                                                     "csrf_token": token, "browser_time_zone": zone})
        assert response.status_code == 302
        await user.refresh_from_db()

    await log_in_from("Not/AZone")  # nonsense is ignored, never an error
    assert user.time_zone == "UTC"
    await log_in_from("America/New_York")
    assert user.time_zone == "America/New_York" and not user.time_zone_chosen
    await log_in_from("Europe/Berlin")  # set once: a trip abroad does not move it
    assert user.time_zone == "America/New_York"
    # A zone chosen in Account is kept, even UTC.
    csrf = await login(client)
    await client.post("/account/time-zone", form={"time_zone": "UTC", "csrf_token": csrf})
    await log_in_from("Asia/Tokyo")
    assert user.time_zone == "UTC" and user.time_zone_chosen


async def test_signup_and_setup_take_the_browsers_time_zone(app, client, herald):
    from appliance.accounts.models import User
    from appliance.accounts.setup import ensure_setup_link
    from tests.support.users import csrf_from

    token = await csrf_from(client, "/login")
    link = await ensure_setup_link(herald)
    assert link
    path = link.removeprefix(herald.settings.base_url)
    html = await (await client.get(path)).get_data(as_text=True)
    assert 'name="browser_time_zone"' in html
    response = await client.post(path, form={"email": "admin@example.com", "password": PASSWORD,
                                             "csrf_token": token, "browser_time_zone": "Europe/Vienna"})
    assert response.status_code == 302, await response.get_data(as_text=True)
    assert (await User.get(email="admin@example.com")).time_zone == "Europe/Vienna"


async def test_personal_token_shown_once_used_listed_and_revoked(app, client, clock):
    await make_user()
    csrf = await login(client)
    response = await client.post("/account/tokens", form={"name": "my script", "csrf_token": csrf})
    assert response.status_code == 201
    html = await response.get_data(as_text=True)
    token = html.split('id="new-token" type="text" readonly value="')[1].split('"')[0]
    assert token.startswith("hat_") and len(token) > 40
    record = await AccessToken.get(name="my script")
    assert record.client_id == "" and record.scope == "printers:read" and token not in record.token_hash
    page = await (await client.get("/account")).get_data(as_text=True)
    assert "my script" in page and token not in page and "never" in page

    bearer = app.test_client()
    response = await bearer.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and (await response.get_json())["email"] == "ada@example.com"
    await record.refresh_from_db()
    assert record.last_used_at == clock.now()
    assert "never" not in await (await client.get("/account")).get_data(as_text=True)
    # A token cannot manage tokens.
    response = await bearer.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401

    response = await client.post(f"/account/tokens/{record.id}/revoke", form={"csrf_token": csrf})
    assert response.status_code == 302
    response = await bearer.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "my script" not in await (await client.get("/account")).get_data(as_text=True)


async def test_token_json_api_with_session_and_csrf_header(app, client):
    await make_user()
    await make_user("bob@example.com")
    csrf = await login(client)
    response = await client.post("/api/v1/tokens", json={"name": "cron"})
    assert response.status_code == 403  # no CSRF header
    response = await client.post("/api/v1/tokens", json={"name": 5}, headers={"X-CSRF-Token": csrf})
    assert response.status_code in (400, 422)
    assert "name" in (await response.get_json())["message"]
    response = await client.post("/api/v1/tokens", json={"name": "cron"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201
    created = await response.get_json()
    assert created["token"].startswith("hat_") and created["scope"] == "printers:read"
    listed = await (await client.get("/api/v1/tokens")).get_json()
    assert [t["name"] for t in listed["tokens"]] == ["cron"]
    assert "token" not in listed["tokens"][0] and listed["tokens"][0]["last_used_at"] is None

    # Bob cannot revoke Ada's token.
    bob = app.test_client()
    bob_csrf = await login(bob, "bob@example.com")
    response = await bob.delete(f"/api/v1/tokens/{created['id']}", headers={"X-CSRF-Token": bob_csrf})
    assert response.status_code == 404
    response = await client.delete(f"/api/v1/tokens/{created['id']}")
    assert response.status_code == 403  # CSRF header missing
    response = await client.delete(f"/api/v1/tokens/{created['id']}", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    response = await app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert response.status_code == 401
    assert (await app.test_client().get("/api/v1/tokens")).status_code == 401


async def test_token_scopes_chosen_in_json_api_open_the_webhooks_api(app, client):
    await make_user()
    csrf = await login(client)
    response = await client.post("/api/v1/tokens", json={"name": "hooks", "scopes": ["webhooks"]},
                                 headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201
    hooks = await response.get_json()
    assert hooks["scope"] == "webhooks" and hooks["scopes"] == ["webhooks"]
    response = await client.post("/api/v1/tokens", json={"name": "status"}, headers={"X-CSRF-Token": csrf})
    status_only = (await response.get_json())["token"]
    listed = {t["name"]: t["scopes"] for t in (await (await client.get("/api/v1/tokens")).get_json())["tokens"]}
    assert listed == {"hooks": ["webhooks"], "status": ["printers:read"]}

    # A script with the webhooks token: no session, no CSRF header.
    script = app.test_client()
    auth = {"Authorization": f"Bearer {hooks['token']}"}
    response = await script.post("/api/v1/webhooks", headers=auth,
                                 json={"name": "from cron", "url": "https://example.com/hook"})
    assert response.status_code == 201, await response.get_data(as_text=True)
    response = await script.get("/api/v1/webhooks", headers=auth)
    assert response.status_code == 200
    assert [t["name"] for t in (await response.get_json())["targets"]] == ["from cron"]
    # It has only the scope it was given.
    response = await script.get("/api/v1/printers", headers=auth)
    assert response.status_code == 403 and (await response.get_json())["error"] == "insufficient_scope"

    # The default printers:read token is refused by the webhooks API.
    narrow = {"Authorization": f"Bearer {status_only}"}
    for response in (await script.get("/api/v1/webhooks", headers=narrow),
                     await script.post("/api/v1/webhooks", headers=narrow,
                                       json={"name": "x", "url": "https://example.com/x"})):
        assert response.status_code == 403
        assert (await response.get_json())["error"] == "insufficient_scope"
        assert 'scope="webhooks"' in response.headers["WWW-Authenticate"]


async def test_bad_token_scopes_answer_400_naming_them(app, client):
    await make_user()
    csrf = await login(client)
    for scopes, words in ((["printers:read", "admin"], "admin"), ([], "at least one"),
                          (["printers:write"], "printers:write")):
        response = await client.post("/api/v1/tokens", json={"name": "x", "scopes": scopes},
                                     headers={"X-CSRF-Token": csrf})
        assert response.status_code == 400, scopes
        body = await response.get_json()
        assert body["error"] == "invalid_scope" and words in body["message"]
    response = await client.post("/api/v1/tokens", json={"name": "x", "scopes": "webhooks"},
                                 headers={"X-CSRF-Token": csrf})
    assert response.status_code in (400, 422)
    response = await client.post("/account/tokens", form={"name": "x", "scope_choice": "1", "scopes": "root",
                                                          "csrf_token": csrf})
    assert response.status_code == 400
    assert "Unknown scope &#39;root&#39;" in await response.get_data(as_text=True)
    response = await client.post("/account/tokens", form={"name": "x", "scope_choice": "1", "csrf_token": csrf})
    assert response.status_code == 400
    assert "Choose at least one scope" in await response.get_data(as_text=True)
    assert await AccessToken.filter(name="x").count() == 0


async def test_account_page_offers_and_shows_token_scopes(app, client):
    await make_user()
    csrf = await login(client)
    page = await (await client.get("/account")).get_data(as_text=True)
    assert 'name="scopes" value="printers:read" checked' in page
    assert 'name="scopes" value="webhooks">' in page  # offered, not ticked by default
    form = [("csrf_token", csrf), ("name", "both"), ("scope_choice", "1"),
            ("scopes", "printers:read"), ("scopes", "webhooks")]
    response = await client.post("/account/tokens", data="&".join(f"{k}={v}" for k, v in form),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 201
    assert (await AccessToken.get(name="both")).scope == "printers:read webhooks"
    await client.post("/account/tokens", form={"name": "hooks only", "scope_choice": "1", "scopes": "webhooks",
                                               "csrf_token": csrf})
    page = await (await client.get("/account")).get_data(as_text=True)
    rows = {row.split("\n")[0]: row.split("</td>")[0] for row in page.split("<tr>\n      <td>")[1:]}
    assert rows["both"].endswith('<div class="token-scopes"><code>printers:read</code> <code>webhooks</code></div>')
    assert rows["hooks only"].endswith('<div class="token-scopes"><code>webhooks</code></div>')


async def test_unverified_user_cannot_create_tokens(app, client):
    await make_user(verified=False)
    csrf = await login(client)
    response = await client.post("/api/v1/tokens", json={"name": "cron"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403
    assert (await response.get_json())["error"] == "email_unverified"
    assert (await client.get("/api/v1/me")).status_code == 200  # reading is fine


async def test_delete_account_removes_everything_that_belongs_to_it(app, client, clock):
    ada = await make_user()
    bob = await make_user("bob@example.com")
    for owner in (ada, bob):
        printer = await Printer.create(id=str(uuid.uuid4()), owner=owner, name=f"{owner.email}'s printer")
        await Event.create(printer=printer, event_id=str(uuid.uuid4()), type="print.started", sequence=1,
                           occurred_at=clock.now(), received_at=clock.now())
        await Job.create(printer=printer, file="benchy.gcode")
        await LinkRequest.create(device_code_hash=uuid.uuid4().hex, user_code=uuid.uuid4().hex[:8],
                                 printer_name="x", expires_at=clock.now(), approved_by=owner, printer=printer)
        await AccessToken.create(token_hash=uuid.uuid4().hex, user=owner, name="t")
        await AccessToken.create(token_hash=uuid.uuid4().hex, user=owner, client_id="alexa", name="Alexa")
        await AuthorizationCode.create(code_hash=uuid.uuid4().hex, client_id="alexa", user=owner,
                                       expires_at=clock.now())
        await issue_email_token(owner, "reset", clock=clock)
    csrf = await login(client)
    response = await client.post("/account/delete", form={"current_password": "wrong password!!", "csrf_token": csrf})
    assert response.status_code == 400
    assert await User.filter(id=ada.id).exists()
    response = await client.post("/account/delete", form={"current_password": PASSWORD, "csrf_token": csrf})
    assert response.status_code == 302 and response.headers["Location"] == "/login?done=deleted"
    assert not await User.filter(id=ada.id).exists()
    for model in (Printer, Event, Job, LinkRequest, AccessToken, AuthorizationCode, EmailToken, LoginSession):
        expected = {LoginSession: 0, AccessToken: 2}.get(model, 1)  # Bob's rows stay, Ada's are gone
        assert await model.all().count() == expected, model.__name__
    assert (await Printer.get()).owner_id == bob.id
    assert (await client.get("/account")).status_code == 302


async def test_last_admin_cannot_delete_their_account(app, client):
    await make_user(admin=True)
    csrf = await login(client)
    response = await client.post("/account/delete", form={"current_password": PASSWORD, "csrf_token": csrf})
    assert response.status_code == 409
    assert await User.exists()


async def test_account_page_links_to_connected_apps(app, client):
    await make_user()
    await login(client)
    page = await (await client.get("/account")).get_data(as_text=True)
    assert 'href="/account/apps"' in page


async def test_openapi_describes_the_token_api_but_not_the_pages(client):
    paths = (await (await client.get("/api/v1/openapi.json")).get_json())["paths"]
    assert {"/api/v1/me", "/api/v1/tokens", "/api/v1/tokens/{token_id}"} <= set(paths)
    assert "post" in paths["/api/v1/tokens"] and "delete" in paths["/api/v1/tokens/{token_id}"]
    mine = {"/account", "/account/tokens", "/account/delete", "/admin/users", "/admin/mail", "/signup",
            "/setup/{token}", "/login", "/reset", "/verify/{token}"}
    assert not mine & set(paths)


async def test_malformed_token_requests_get_a_clear_4xx(app, client):
    await make_user()
    csrf = await login(client)
    response = await client.post("/api/v1/tokens", data=b"{not json",
                                 headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert response.status_code == 400
    response = await client.post("/api/v1/tokens", json={"name": ""}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 422 and "name" in (await response.get_json())["message"]
    response = await client.delete("/api/v1/tokens/abc", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 404
    assert not await AccessToken.exists()


async def _token(user, name: str = "script") -> str:
    from appliance.accounts.tokens import create_personal_token

    token, _ = await create_personal_token(user, name)
    return token


async def _token_works(app, token: str) -> bool:
    response = await app.test_client().get("/api/v1/printers", headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 200


async def test_a_password_change_offers_to_end_personal_tokens_and_does_by_default(app, client):
    user = await make_user()
    token = await _token(user)
    csrf = await login(client)
    page = await (await client.get("/account")).get_data(as_text=True)
    assert 'name="end_tokens" checked' in page and "Also revoke my 1 personal access token" in page
    # the box as the page sends it: checked
    response = await client.post("/account/password", form={
        "current_password": PASSWORD, "password": NEW_PASSWORD, "csrf_token": csrf,
        "end_tokens_offered": "1", "end_tokens": "on"})
    assert response.headers["Location"] == "/account?done=password_tokens"
    assert not await _token_works(app, token)
    notice = await (await client.get("/account?done=password_tokens")).get_data(as_text=True)
    assert "personal access tokens were revoked" in notice


async def test_unticking_the_box_keeps_the_tokens(app, client):
    user = await make_user()
    token = await _token(user)
    csrf = await login(client)
    response = await client.post("/account/password", form={
        "current_password": PASSWORD, "password": NEW_PASSWORD, "csrf_token": csrf, "end_tokens_offered": "1"})
    assert response.headers["Location"] == "/account?done=password"
    assert await _token_works(app, token)


async def test_a_password_change_without_the_form_ends_the_tokens(app, client):
    user = await make_user()
    token = await _token(user)
    csrf = await login(client)
    response = await client.post("/account/password", form={
        "current_password": PASSWORD, "password": NEW_PASSWORD, "csrf_token": csrf})
    assert response.status_code == 302
    assert not await _token_works(app, token)


async def test_a_password_reset_ends_the_personal_tokens(app, client, caplog):
    caplog.set_level(logging.INFO)
    user = await make_user()
    token = await _token(user)
    await post_form(client, "/reset", {"email": "ada@example.com"}, page="/reset")
    (link,) = links_in(caplog.text, "reset")
    response = await post_form(client, f"/reset/{link}", {"password": NEW_PASSWORD}, page=f"/reset/{link}")
    assert response.status_code == 302
    assert not await _token_works(app, token)
