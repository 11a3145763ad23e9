"""Admin pages: who may see them, users, signup mode, mail settings with a test mail, system rows; CSRF on every form."""

from __future__ import annotations

import re

from appliance.accounts.models import User
from appliance.core.models import RuntimeSetting
from appliance.core.runtime_settings import effective
from appliance.core.settings import Settings
from tests.support.accounts import post_form
from tests.support.smtp import SMTPServer
from tests.support.users import PASSWORD, login, make_user

ADMIN_PAGES = ["/admin", "/admin/users", "/admin/invites", "/admin/signup", "/admin/mail", "/admin/system"]


async def test_admin_pages_need_an_admin(app, client):
    await make_user("admin@example.com", admin=True)
    user = await make_user()
    for path in ADMIN_PAGES:
        response = await client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path
    csrf = await login(client)
    for path in ADMIN_PAGES:
        assert (await client.get(path)).status_code == 403, path
    posts = ["/admin/invites", "/admin/signup", "/admin/mail", "/admin/mail/test",
             f"/admin/users/{user.id}/admin", f"/admin/users/{user.id}/delete",
             f"/admin/users/{user.id}/verification-link"]
    for path in posts:
        response = await client.post(path, form={"csrf_token": csrf, "is_admin": "1", "signup_mode": "open"})
        assert response.status_code == 403, path
    await user.refresh_from_db()
    assert not user.is_admin
    assert not await RuntimeSetting.exists()
    admin = app.test_client()
    await login(admin, "admin@example.com")
    for path in ADMIN_PAGES:
        assert (await admin.get(path)).status_code in (200, 302), path


async def test_make_and_unmake_admin_and_delete_users(app, client):
    me = await make_user("admin@example.com", admin=True)
    bea = await make_user("bea@example.com")
    await login(client, "admin@example.com")
    response = await post_form(client, f"/admin/users/{me.id}/admin", {"is_admin": "0"}, page="/admin/users")
    assert response.status_code == 409  # the last admin stays
    response = await post_form(client, f"/admin/users/{bea.id}/admin", {"is_admin": "1"}, page="/admin/users")
    assert response.status_code == 302
    assert (await User.get(id=bea.id)).is_admin
    response = await post_form(client, f"/admin/users/{bea.id}/admin", {"is_admin": "0"}, page="/admin/users")
    assert not (await User.get(id=bea.id)).is_admin
    response = await post_form(client, f"/admin/users/{bea.id}/delete", {}, page="/admin/users")
    assert response.status_code == 302
    assert not await User.filter(id=bea.id).exists()
    response = await post_form(client, "/admin/users/999/delete", {}, page="/admin/users")
    assert response.status_code == 404


async def test_signup_mode_page_and_environment_wins(app, client, herald, settings):
    await make_user("admin@example.com", admin=True)
    await login(client, "admin@example.com")
    response = await post_form(client, "/admin/signup", {"signup_mode": "everyone"}, page="/admin/signup")
    assert response.status_code == 400
    response = await post_form(client, "/admin/signup", {"signup_mode": "open"}, page="/admin/signup")
    assert response.status_code == 302
    assert await effective(herald, "signup_mode") == "open"
    herald.settings = Settings(values={**settings.values, "signup_mode": "closed"},
                               from_env=frozenset({"signup_mode"}))
    page = await (await client.get("/admin/signup")).get_data(as_text=True)
    assert "HERALD_SIGNUP_MODE" in page and "disabled" in page
    response = await post_form(client, "/admin/signup", {"signup_mode": "open"}, page="/admin/signup")
    assert response.status_code == 409
    assert await effective(herald, "signup_mode") == "closed"


async def test_mail_settings_saved_password_encrypted_and_test_mail_sent(app, client, herald, settings):
    await make_user("admin@example.com", admin=True)
    await login(client, "admin@example.com")
    response = await post_form(client, "/admin/mail/test", {}, page="/admin/mail")
    assert "written to Herald&#39;s log" in await response.get_data(as_text=True)
    with SMTPServer() as smtp:
        form = {"smtp_host": "127.0.0.1", "smtp_port": str(smtp.port), "smtp_tls": "none",
                "smtp_username": "", "smtp_password": "s3cret-smtp-pass", "mail_from": "herald@herald.test"}
        response = await post_form(client, "/admin/mail", {**form, "smtp_port": "port"}, page="/admin/mail")
        assert response.status_code == 400 and 'id="smtp_port-error"' in await response.get_data(as_text=True)
        assert not await RuntimeSetting.exists()  # all or nothing
        response = await post_form(client, "/admin/mail", form, page="/admin/mail")
        assert response.status_code == 302
        row = await RuntimeSetting.get(name="smtp_password")
        assert row.encrypted and "s3cret" not in row.value
        page = await (await client.get("/admin/mail")).get_data(as_text=True)
        assert "s3cret-smtp-pass" not in page and "A password is stored" in page
        # An empty password field keeps the stored one.
        await post_form(client, "/admin/mail", {**form, "smtp_password": ""}, page="/admin/mail")
        assert await effective(herald, "smtp_password") == "s3cret-smtp-pass"
        await RuntimeSetting.filter(name="smtp_password").delete()  # aiosmtpd here has no AUTH
        response = await post_form(client, "/admin/mail/test", {}, page="/admin/mail")
        assert response.status_code == 200
        (message,) = await smtp.wait_for(1)
        assert message["To"] == "admin@example.com" and message["From"] == "herald@herald.test"
    # Fields set by the environment are shown read-only and not changed.
    herald.settings = Settings(values={**settings.values, "smtp_host": "mail.example.com"},
                               from_env=frozenset({"smtp_host"}))
    page = await (await client.get("/admin/mail")).get_data(as_text=True)
    assert "HERALD_SMTP_HOST" in page and 'name="smtp_host"' not in page


async def test_system_page_shows_real_numbers_and_takes_extra_rows(app, client, herald, backend):
    await make_user("admin@example.com", admin=True)
    await make_user("bea@example.com", verified=False)

    async def queue_rows(_herald):
        return [("Webhook queue", "3 pending")]

    herald.hooks.system_rows.append(queue_rows)
    await login(client, "admin@example.com")
    page = await (await client.get("/admin/system")).get_data(as_text=True)
    rows = dict(re.findall(r'<th scope="row">([^<]+)</th><td>([^<]*)</td>', page))
    assert rows["Users"] == "2" and rows["Unverified users"] == "1" and rows["Printers"] == "0"
    assert rows["Database"] == ("SQLite" if backend == "sqlite" else "PostgreSQL")
    assert rows["Webhook queue"] == "3 pending"
    from appliance import __version__

    assert rows["Version"] == __version__


async def test_every_form_needs_the_csrf_token(app, client):
    """Every state-changing route of the app refuses a cookie-authenticated request without CSRF."""
    me = await make_user("admin@example.com", admin=True)
    await login(client, "admin@example.com")
    checked = []
    for rule in app.app.url_map.iter_rules():
        methods = set(rule.methods or ()) & {"POST", "PUT", "PATCH", "DELETE"}
        view = app.app.view_functions[rule.endpoint]
        if not methods or getattr(view, "_herald_csrf_exempt", False):
            continue
        path = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "1", rule.rule)
        for method in methods:
            response = await client.open(path, method=method, form={"email": "x@example.com",
                                                                    "password": PASSWORD})
            assert response.status_code == 403, (method, path)
            checked.append(path)
    assert "/account/delete" in checked and "/admin/mail" in checked and "/api/v1/tokens" in checked
    assert await User.filter(id=me.id).exists()
