"""App Connections through the test client: the portal's checks and completion, the app API, revoking."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.apps import connections, notifications, registry
from appliance.apps.models import AppConnection, RegisteredApp
from appliance.core.secrets import token_hash
from appliance.printers.manage import create_printer, remove_printer, unlink_printer
from appliance.webhooks.models import WebhookTarget
from tests.support.printers import bearer
from tests.support.users import login, make_user

START = "/appportal/v1/?appid=octopod&ReturnURL=octopod://octoeverywhere&moonraker=true&formatVersion=1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_printer(herald, user, name: str = "Prusa MK4"):
    """A linked printer (.printer) and its key (.key)."""
    return await create_printer(herald, user, name)


async def _consent(client, printer_id: str, query: str = START) -> str:
    page = await client.get(query.replace("/appportal/v1/?", "/appportal/v1/consent?") + f"&printer={printer_id}")
    assert page.status_code == 200, await page.get_data(as_text=True)
    html = await page.get_data(as_text=True)
    return _CSRF.search(html).group(1)


async def _connect(client, herald, printer_id: str, query: str = START) -> dict[str, str]:
    csrf = await _consent(client, printer_id, query)
    fields = {"csrf_token": csrf, "printer": printer_id, "decision": "approve",
              "appId": "octopod", "returnUrl": "octopod://octoeverywhere"}
    response = await client.post("/appportal/v1/consent", form=fields)
    assert response.status_code == 302, await response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith("octopod://octoeverywhere?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_completion_carries_every_field_and_stores_only_hashes(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user, "Voron")
    await client.put("/api/v1/printer/status", headers=bearer(made.key),
                     json={"state": "Operational", "state_id": "operational", "local_ip": "192.168.1.20"})
    await login(client)
    result = await _connect(client, herald, made.printer.id)
    assert result["success"] == "true"
    for name in ("id", "url", "appApiToken", "printername", "userPrinterAccessUrl", "authBasicHttpUser",
                 "authBasicHttpPassword", "authbasichttpuser", "authbasichttppassword", "authBearerToken"):
        assert result.get(name), name
    assert result["authbasichttpuser"] == result["authBasicHttpUser"]
    assert result["printername"] == "Voron"
    assert result["printerLastKnownLocalIp"] == "192.168.1.20"
    assert "octoPrintApiKey" not in result
    row = await AppConnection.get(id=result["id"])
    assert row.app_token_hash == token_hash(result["appApiToken"])
    assert row.bearer_token_hash == token_hash(result["authBearerToken"])
    assert row.basic_password_hash == token_hash(result["authBasicHttpPassword"])
    stored = " ".join(str(v) for v in (await AppConnection.filter(id=row.id).values())[0].values())
    for secret in ("appApiToken", "authBearerToken", "authBasicHttpPassword"):
        assert result[secret] not in stored


async def test_cancel_returns_success_false(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user)
    await login(client)
    csrf = await _consent(client, made.printer.id)
    response = await client.post("/appportal/v1/consent", form={
        "csrf_token": csrf, "printer": made.printer.id, "decision": "cancel", "appId": "octopod",
        "returnUrl": "octopod://octoeverywhere"})
    assert response.headers["Location"] == "octopod://octoeverywhere?success=false"
    assert await AppConnection.all().count() == 0


async def test_portal_refuses_unknown_apps_and_foreign_return_urls_with_a_page(app, client, herald):
    await make_user()
    await login(client)
    for query, words in [("/appportal/v1/?returnUrl=octopod://x", "no appId"),
                         ("/appportal/v1/?appId=nosuchapp&returnUrl=octopod://x", "not registered"),
                         ("/appportal/v1/?appId=octopod&returnUrl=https://evil.example/steal", "not one registered"),
                         ("/appportal/v1/?appId=octopod", "no returnUrl"),
                         ("/appportal/v1/?appId=octopod&returnUrl=octopod://x&octoPrintApiKeyAppName=x",
                          "2 to 60")]:
        response = await client.get(query)
        assert 400 <= response.status_code < 500
        assert "Location" not in response.headers
        assert words in await response.get_data(as_text=True), query
    # the consent POST checks again: a forged returnUrl never gets a redirect
    response = await client.post("/appportal/v1/consent", form={
        "csrf_token": _CSRF.search(await (await client.get("/")).get_data(as_text=True)).group(1),
        "appId": "octopod", "returnUrl": "https://evil.example/", "decision": "approve", "printer": "x"})
    assert response.status_code == 400 and "Location" not in response.headers


async def test_portal_sends_strangers_to_login_and_back(app, client, herald):
    response = await client.get(START)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    assert "appportal" in location


async def test_another_users_printer_id_reveals_nothing(app, client, herald):
    other = await make_user("bo@example.com")
    theirs = await make_printer(herald, other, "Secret Printer")
    await make_user()
    await login(client)
    page = await client.get(START + f"&printerId={theirs.printer.id}")
    html = await page.get_data(as_text=True)
    assert page.status_code == 200 and "Secret Printer" not in html and theirs.printer.id not in html
    consent = await client.get(START.replace("/appportal/v1/?", "/appportal/v1/consent?")
                               + f"&printer={theirs.printer.id}")
    assert consent.status_code == 302 and "Secret Printer" not in await consent.get_data(as_text=True)
    csrf = _CSRF.search(html).group(1)
    response = await client.post("/appportal/v1/consent", form={
        "csrf_token": csrf, "printer": theirs.printer.id, "decision": "approve", "appId": "octopod",
        "returnUrl": "octopod://octoeverywhere"})
    assert response.status_code == 404 and "Secret Printer" not in await response.get_data(as_text=True)


async def test_consent_needs_csrf(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user)
    await login(client)
    response = await client.post("/appportal/v1/consent", form={
        "printer": made.printer.id, "decision": "approve", "appId": "octopod", "returnUrl": "octopod://o"})
    assert response.status_code == 403
    assert await AppConnection.all().count() == 0


async def test_preselects_own_printer(app, client, herald):
    user = await make_user()
    await make_printer(herald, user, "Alpha")
    second = await make_printer(herald, user, "Beta")
    await login(client)
    html = await (await client.get(START + f"&printerId={second.printer.id}")).get_data(as_text=True)
    assert re.search(rf'value="{second.printer.id}" required\s+checked', html)


async def test_app_api_info_codes_and_envelope(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user, "Voron")
    await login(client)
    result = await _connect(client, herald, made.printer.id)
    token = result["appApiToken"]
    info = await client.get("/api/appconnection/info", headers={"AppToken": token})
    body = await info.get_json()
    assert info.status_code == 200 and body["Status"] == 200 and body["Error"] == "" and not body["IsUserError"]
    assert body["Result"]["PrinterName"] == "Voron"
    limits = body["Result"]["PrinterLimits"]
    assert set(limits) == {
        "MaxDownloadFileSizeBytes", "MaxUploadFileSizeBytes", "MaxSingleWebcamStreamLengthSeconds",
        "MaxTotalWebcamStreamTimePerTimeWindowSeconds", "WebcamStreamTimeWindow", "MaxConcurrentStreams",
        "MaxBandwidthBytesPerSecond", "MaxRequestBodyBytes", "IdleStreamTimeoutSeconds"}
    assert limits["MaxConcurrentStreams"] == herald.settings.relay_max_streams
    assert limits["MaxUploadFileSizeBytes"] == limits["MaxRequestBodyBytes"] == herald.settings.relay_max_body
    missing = await client.get("/api/appconnection/info")
    assert missing.status_code == 400 and (await missing.get_json())["Status"] == 400
    unknown = await client.get("/api/appconnection/info", headers={"AppToken": "hct_nope"})
    assert unknown.status_code == 603 and (await unknown.get_json())["Status"] == 603
    # POST takes the token in the body too
    deleted = await client.post("/api/appconnection/DeleteNotificationWebhook", json={"AppToken": token})
    assert deleted.status_code == 200
    await client.post(f"/account/app-connections/{result['id']}/revoke",
                      form={"csrf_token": _CSRF.search(await (await client.get("/account/apps")).get_data(
                          as_text=True)).group(1)})
    revoked = await client.get("/api/appconnection/info", headers={"AppToken": token})
    assert revoked.status_code == 604 and "revoked" in (await revoked.get_json())["Error"]


async def test_unlinking_or_removing_the_printer_ends_its_connections(app, client, herald):
    user = await make_user()
    first = await make_printer(herald, user, "One")
    second = await make_printer(herald, user, "Two")
    await login(client)
    a = await _connect(client, herald, first.printer.id)
    b = await _connect(client, herald, second.printer.id)
    await client.post("/api/appconnection/SetNotificationWebhook", headers={"AppToken": b["appApiToken"]},
                      json={"WebhookUrl": "https://hooks.example.net/x"})
    assert await WebhookTarget.all().count() == 1
    await unlink_printer(herald, first.printer.id)
    assert (await client.get("/api/appconnection/info", headers={"AppToken": a["appApiToken"]})).status_code == 604
    await remove_printer(herald, user, second.printer.id)
    assert (await client.get("/api/appconnection/info", headers={"AppToken": b["appApiToken"]})).status_code == 604
    assert await WebhookTarget.all().count() == 0


async def test_printer_offline_is_601_on_the_relay_address(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user)
    await login(client)
    result = await _connect(client, herald, made.printer.id)
    parts = urlsplit(result["url"])
    assert parts.hostname.startswith("app-")  # the test settings' public URL is http://herald.test
    nothing = await client.get("/api/version", headers={"Host": parts.netloc})
    assert nothing.status_code == 401 and nothing.headers["WWW-Authenticate"].startswith("Basic")
    wrong = await client.get("/api/version", headers={"Host": parts.netloc, "Authorization": "Bearer hcb_nope"})
    assert wrong.status_code == 401
    basic = base64.b64encode(f"{result['authbasichttpuser']}:{result['authbasichttppassword']}".encode()).decode()
    assert (await client.get("/api/version", headers={"Host": parts.netloc, "Authorization": f"Basic {basic}"})
            ).status_code == 601
    host = {"Host": parts.netloc, "Authorization": f"Bearer {result['authBearerToken']}"}
    response = await client.get("/api/version", headers=host)
    assert response.status_code == 601
    await client.put("/api/v1/printer/status", headers=bearer(made.key),
                     json={"state": "Operational", "state_id": "operational"})
    response = await client.get("/api/version", headers=host)
    # online, but its plugin holds no tunnel: the relay is off (tests/appliance/relay has it on)
    assert response.status_code == 601 and "relay is off" in (await response.get_json())["Error"]
    # revoking ends the relay credentials at once
    await client.post(f"/account/app-connections/{result['id']}/revoke", form={"csrf_token": _CSRF.search(
        await (await client.get("/account/apps")).get_data(as_text=True)).group(1)})
    assert (await client.get("/api/version", headers=host)).status_code == 604


async def test_relay_host_form(app, herald):
    settings = herald.settings.replace(relay_url="https://relay.example.net")
    assert connections.connection_url(settings, "app-abc") == "https://app-abc.relay.example.net"
    assert connections.host_label_of(settings, "app-abc.relay.example.net") == "app-abc"
    assert connections.host_label_of(settings, "relay.example.net") is None
    assert connections.host_label_of(settings, "evil.app-abc.relay.example.net") is None
    ip = herald.settings.replace(relay_url="http://192.168.1.5:8080")
    assert connections.connection_url(ip, "app-abc") == "http://192.168.1.5:8080/relay/app-abc"


async def test_set_webhook_validates(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user)
    await login(client)
    token = (await _connect(client, herald, made.printer.id))["appApiToken"]
    for body, words in [({}, "WebhookUrl is required"), ({"WebhookUrl": "ftp://x"}, "http"),
                        ({"WebhookUrl": "https://a.example", "InclusiveEventTypesFilter": [7]}, "7 is not"),
                        ({"WebhookUrl": "http://127.0.0.1:9/x"}, "private")]:
        response = await client.post("/api/appconnection/SetNotificationWebhook", headers={"AppToken": token},
                                     json=body)
        envelope = await response.get_json()
        assert 400 <= response.status_code < 500 and envelope["IsUserError"], body
        assert words in envelope["Error"], (body, envelope)
    ok = await client.post("/api/appconnection/SetNotificationWebhook", headers={"AppToken": token},
                           json={"WebhookUrl": "https://a.example/n", "InclusiveEventTypesFilter": [2, 3]})
    assert ok.status_code == 200
    target = await WebhookTarget.get()
    assert sorted(target.events) == ["print.cancelled", "print.done", "print.failed"]
    assert target.printer_ids == [made.printer.id]


async def test_webhook_registration_expires_after_180_days(app, client, herald, clock):
    user = await make_user()
    made = await make_printer(herald, user)
    await login(client)
    token = (await _connect(client, herald, made.printer.id))["appApiToken"]
    await client.post("/api/appconnection/SetNotificationWebhook", headers={"AppToken": token},
                      json={"WebhookUrl": "https://a.example/n"})
    clock.advance(179 * 86400)
    assert await notifications.expire_webhooks(herald) == 0
    clock.advance(2 * 86400)
    assert await notifications.expire_webhooks(herald) == 1
    assert await WebhookTarget.all().count() == 0
    test = await client.get("/api/appconnection/TestWebhook", headers={"AppToken": token})
    assert test.status_code == 404 and "SetNotificationWebhook" in (await test.get_json())["Error"]


async def test_app_api_is_rate_limited_per_token(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user)
    await login(client)
    token = (await _connect(client, herald, made.printer.id))["appApiToken"]
    for _ in range(120):
        assert (await client.get("/api/appconnection/info", headers={"AppToken": token})).status_code == 200
    limited = await client.get("/api/appconnection/info", headers={"AppToken": token})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert (await limited.get_json())["Status"] == 429


async def test_live_link_from_the_app_api(app, client, herald):
    user = await make_user()
    made = await make_printer(herald, user, "Voron")
    await client.put("/api/v1/printer/status", headers=bearer(made.key), json={
        "state": "Printing", "state_id": "printing",
        "job": {"file": "benchy.gcode", "progress": 42.5, "print_time": 100, "print_time_left": 3600}})
    await login(client)
    token = (await _connect(client, herald, made.printer.id))["appApiToken"]
    for bad in (0, 17521, "x", 1.5):
        response = await client.post("/api/live/createfromappconnection", headers={"AppToken": token},
                                     json={"ExpirationHours": bad})
        assert response.status_code == 400, bad
    response = await client.post("/api/live/createfromappconnection", headers={"AppToken": token}, json={})
    result = (await response.get_json())["Result"]
    assert set(result) >= {"LiveId", "Url", "ShortUrl"}
    anonymous = app.test_client()
    page = await anonymous.get(urlsplit(result["Url"]).path)
    html = await page.get_data(as_text=True)
    assert page.status_code == 200 and "Voron" in html and "42%" in html and "1 h 0 min" in html


async def test_registry_admin_rules(app, herald):
    with pytest.raises(Exception, match="prefix"):
        await registry.register_app(herald, "myapp", "My App", "", [])
    with pytest.raises(Exception, match="scheme"):
        await registry.register_app(herald, "myapp", "My App", "", ["noscheme"])
    await registry.register_app(herald, "MyApp", "My App", "", ["myapp://done"])
    found = await registry.find_app(herald, "MYAPP")
    assert found is not None and registry.return_url_allowed(found, "myapp://done?x=1")
    assert not registry.return_url_allowed(found, "myapp://other")
    await registry.set_enabled(herald, "octopod", False)
    assert await registry.find_app(herald, "octopod") is None
    assert await RegisteredApp.filter(app_id="octopod", enabled=False).exists()
    off = herald.settings.replace(apps_builtin=False)
    herald.settings = off
    assert await registry.find_app(herald, "mobileraker") is None


async def test_no_supporter_perks_page_says_none_are_needed(app, client):
    response = await client.get("/appportal/v1/nosupporterperks?moonraker=true&appid=mobileraker")
    assert response.status_code == 200 and "always available" in await response.get_data(as_text=True)


async def test_a_new_user_signs_up_from_the_portal_and_comes_back(app, client, herald):
    from appliance.core.runtime_settings import set_runtime

    await set_runtime(herald, "signup_mode", "open")
    login_page = await client.get((await client.get(START)).headers["Location"])
    html = await login_page.get_data(as_text=True)
    signup_link = re.search(r'href="(/signup\?next=[^"]+)"', html).group(1).replace("&amp;", "&")
    signup = await (await client.get(signup_link)).get_data(as_text=True)
    next_value = re.search(r'name="next" value="([^"]+)"', signup).group(1).replace("&amp;", "&")
    response = await client.post("/signup", form={"csrf_token": _CSRF.search(signup).group(1), "next": next_value,
                                                  "email": "new@example.com", "password": "plywood lantern orbit 42"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/appportal/v1/?appId=octopod")
    back = await client.get(response.headers["Location"])
    assert back.status_code == 200 and "Connect OctoPod to a printer" in await back.get_data(as_text=True)
