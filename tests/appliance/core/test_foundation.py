"""The skeleton: settings, health, login with CSRF, the real server."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from appliance.core.settings import (
    SETTINGS,
    Settings,
    SettingsError,
    load_settings,
    settings_markdown,
)
from tests.conftest import free_port
from tests.support.server import LiveServer
from tests.support.users import PASSWORD, csrf_from, login, make_user

ROOT = Path(__file__).resolve().parents[3]


def test_env_overrides_toml_and_defaults(tmp_path):
    (tmp_path / "herald.toml").write_text('port = 9000\nsignup_mode = "open"\noffline_after = 60\n')
    settings = load_settings({"HERALD_DATA_DIR": str(tmp_path), "HERALD_PORT": "9100"})
    assert settings.port == 9100  # environment wins over the file
    assert settings.signup_mode == "open"  # the file wins over the default
    assert settings.offline_after == 60
    assert settings.workers == 1  # the default
    assert settings.from_env == {"data_dir", "port"}
    assert settings.db_url == f"sqlite://{tmp_path.resolve() / 'herald.sqlite3'}"


def test_bad_setting_names_the_variable(tmp_path):
    with pytest.raises(SettingsError, match="HERALD_PORT"):
        load_settings({"HERALD_DATA_DIR": str(tmp_path), "HERALD_PORT": "eighty"})
    with pytest.raises(SettingsError, match="signup_mode"):
        load_settings({"HERALD_DATA_DIR": str(tmp_path), "HERALD_SIGNUP_MODE": "everyone"})


def test_public_url_decides_secure_cookies():
    assert not Settings.build().secure_cookies
    assert Settings.build(public_url="https://herald.example.com/").secure_cookies
    assert Settings.build(public_url="https://herald.example.com/").base_url == "https://herald.example.com"


def test_every_setting_is_documented():
    doc = (ROOT / "docs" / "settings.md").read_text()
    assert settings_markdown() in doc, "docs/settings.md is out of date: run scripts/gen-settings-doc"
    for setting in SETTINGS:
        assert setting.help.strip(), setting.name


async def test_healthz_answers_on_each_backend(client, backend):
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == ("sqlite" if backend == "sqlite" else "postgresql")


async def test_login_needs_csrf_and_right_password(app, client):
    await make_user()
    response = await client.post("/login", form={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 403  # no CSRF token
    token = await csrf_from(client)
    response = await client.post("/login", form={"email": "ada@example.com", "password": "wrong password!!",
                                                  "csrf_token": token})
    assert response.status_code == 400
    assert "not right" in await response.get_data(as_text=True)
    session_csrf = await login(client)
    page = await client.get("/")
    assert "ada@example.com" in await page.get_data(as_text=True)
    response = await client.post("/logout", form={"csrf_token": session_csrf})
    assert response.status_code == 302
    assert (await client.get("/")).headers["Location"] == "/login"


async def test_pages_carry_security_headers(client):
    response = await client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_unknown_api_path_is_json_404(client):
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert (await response.get_json())["error"] == "not_found"


async def test_real_server_serves_health_and_login(tmp_path):
    server = LiveServer(data_dir=tmp_path / "data", port=free_port()).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/healthz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
            async with http.get(server.url + "/login") as response:
                assert response.status == 200
                assert "Log in" in await response.text()
        assert (tmp_path / "data" / "herald.sqlite3").exists()
        assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o077 == 0
    finally:
        assert server.stop() == 0, server.log()


async def test_openapi_describes_the_machine_interface_only(client):
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = set((await response.get_json())["paths"])
    for expected in ("/api/v1/link", "/api/v1/link/token", "/api/v1/printer/status", "/api/v1/printer/events",
                     "/api/v1/printers", "/api/v1/printers/{printer_id}", "/api/v1/webhooks", "/oauth/token",
                     "/alexa", "/healthz"):
        assert expected in paths, expected
    pages = {p for p in paths if not p.startswith("/api/")} - {"/alexa", "/healthz", "/oauth/authorize",
                                                                "/oauth/token", "/oauth/revoke"}
    assert not pages, f"web pages in the OpenAPI document: {sorted(pages)}"


async def test_a_serving_process_freezes_its_start_up_heap_and_collects_less_often(settings, clock):
    import gc

    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from appliance.app import GC_YOUNG_THRESHOLD, create_app, tune_gc_for_serving

    EXECUTOR_CACHE.clear()  # an app built here, not by the fixture: the statement cache is per backend
    before = gc.get_threshold()
    app = create_app(settings, clock=clock)
    tune_gc_for_serving(app)
    try:
        async with app.test_app():
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
            assert gc.get_freeze_count() > 10_000  # the libraries' objects, out of the collector's sight
            cycle: list = []
            cycle.append(cycle)
            del cycle
            assert gc.collect() >= 1  # garbage made afterwards is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
