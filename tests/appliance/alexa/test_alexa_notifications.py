"""Alexa notifications: the opt-in in Herald, Alexa's permission (a skill event), and print
done / failed / needs-attention sent to the Proactive Events API's development stage, against
a local server answering as Amazon documents (Login with Amazon token, 202 Accepted)."""

from __future__ import annotations

import json
import re

import pytest

from appliance.alexa.models import AlexaAccount
from appliance.alexa.notifications import AlexaNotifier
from appliance.core.herald import herald_of
from tests.support.alexa import SKILL_ID, envelope
from tests.support.amazon import FakeAlexaApi
from tests.support.printers import bearer, event_body, make_printer
from tests.support.users import login, make_user

ALEXA_USER = "amzn1.ask.account.TESTUSER"


@pytest.fixture
def settings(settings):
    return settings.replace(alexa_skill_id=SKILL_ID, alexa_single_owner=True, alexa_verify_requests=False)


async def _alexa(client, env):
    response = await client.post("/alexa", data=json.dumps(env).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


def _subscription(api, *event_names):
    env = envelope(request_type="AlexaSkillEvent.ProactiveSubscriptionChanged", api_endpoint=api.url)
    env["request"]["body"] = {"subscriptions": [{"eventName": name} for name in event_names]}
    return env


def _configure(app, herald, api):
    """The skill's client credentials and Login with Amazon at the local server; the API base
    setting points nowhere, so only the apiEndpoint the user's requests name can be used."""
    herald_of(app.app).settings = herald.settings.replace(
        alexa_client_id=api.client_id, alexa_client_secret=api.client_secret,
        alexa_token_url=f"{api.url}/auth/o2/token", alexa_api_base="https://unused.invalid")


async def _event(client, key, number, type_):
    body = event_body(event_id=f"7b0e0b8e-0000-4000-8000-{number:012d}", type_=type_)
    response = await client.post("/api/v1/printer/events", json=body, headers=bearer(key))
    assert response.status_code == 202, await response.get_data(as_text=True)


@pytest.fixture
async def owner(client, herald):
    """The logged-in admin, their CSRF token and the key of their printer "Prusa"."""
    user = await make_user("owner@example.com", admin=True)
    csrf = await login(client, "owner@example.com")
    _, key = await make_printer(herald, user, "Prusa")
    return user, csrf, key


async def test_opted_in_and_permitted_users_hear_of_done_failed_and_needs_attention(app, client, herald, owner):
    owner, csrf, key = owner
    async with FakeAlexaApi() as api:
        _configure(app, herald, api)
        page = await (await client.get("/alexa/notifications")).get_data(as_text=True)
        assert 'id="no-account"' in page  # Herald has not heard from Alexa yet

        await _alexa(client, envelope(request_type="LaunchRequest", api_endpoint=api.url))
        (account,) = await AlexaAccount.all()
        assert (account.alexa_user_id, account.api_endpoint, account.user_id) == (ALEXA_USER, api.url, owner.id)
        assert not account.notify and not account.subscribed

        response = await client.post("/alexa/notifications", form={"csrf_token": csrf, "notify": "on"})
        page = await response.get_data(as_text=True)
        assert 'id="permission-missing"' in page and "checked" in page
        await _event(client, key, 1, "print.done")  # opted in, but Alexa does not allow it yet: not sent

        await _alexa(client, _subscription(api, "AMAZON.MessageAlert.Activated"))
        assert (await AlexaAccount.get(id=account.id)).subscribed
        page = await (await client.get("/alexa/notifications")).get_data(as_text=True)
        assert 'id="permission-granted"' in page

        await _event(client, key, 2, "print.failed")
        await _event(client, key, 3, "print.started")  # not a kind that is notified
        await _event(client, key, 4, "printer.user_action_needed")
        events = await api.wait_for_events(2)

    said = [e.body["event"]["payload"]["messageGroup"]["creator"]["name"] for e in events]
    assert said == ["Prusa: print failed", "Prusa: needs you"]  # in order, and print.done (1) was never sent
    (token,) = api.tokens  # one token for both, kept until it expires
    assert token.path == "/auth/o2/token" and token.body == {
        "grant_type": "client_credentials", "client_id": api.client_id, "client_secret": api.client_secret,
        "scope": "alexa::proactive_events"}
    for call in events:
        assert call.method == "POST" and call.path == "/v1/proactiveEvents/stages/development"
        assert call.headers["Authorization"] == "Bearer Atc|proactive-1"
        assert call.headers["Content-Type"].startswith("application/json")
        body = call.body
        assert set(body) == {"timestamp", "referenceId", "expiryTime", "event", "relevantAudience"}
        assert body["event"]["name"] == "AMAZON.MessageAlert.Activated"
        assert body["event"]["payload"]["state"] == {"status": "UNREAD", "freshness": "NEW"}
        assert body["event"]["payload"]["messageGroup"]["count"] == 1
        assert body["relevantAudience"] == {"type": "Unicast", "payload": {"user": ALEXA_USER}}
        for stamp in ("timestamp", "expiryTime"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body[stamp])
        assert body["expiryTime"] > body["timestamp"]
    assert len({e.body["referenceId"] for e in events}) == 2
    assert herald_of(app.app).part(AlexaNotifier).sent == 2


async def test_withdrawn_permission_or_opt_out_stops_notifications(app, client, herald, owner):
    _, csrf, key = owner
    async with FakeAlexaApi() as api:
        _configure(app, herald, api)
        await _alexa(client, envelope(request_type="LaunchRequest", api_endpoint=api.url))
        await client.post("/alexa/notifications", form={"csrf_token": csrf, "notify": "on"})
        await _alexa(client, _subscription(api, "AMAZON.MessageAlert.Activated"))
        await _alexa(client, _subscription(api))  # withdrawn in the Alexa app
        assert not (await AlexaAccount.get(alexa_user_id=ALEXA_USER)).subscribed
        await _event(client, key, 1, "print.done")
        await _alexa(client, _subscription(api, "AMAZON.MessageAlert.Activated"))
        await client.post("/alexa/notifications", form={"csrf_token": csrf})  # opted out in Herald
        assert not (await AlexaAccount.get(alexa_user_id=ALEXA_USER)).notify
        await _event(client, key, 2, "print.done")
        await client.post("/alexa/notifications", form={"csrf_token": csrf, "notify": "on"})
        await _event(client, key, 3, "print.failed")
        (only,) = await api.wait_for_events(1)
    assert only.body["event"]["payload"]["messageGroup"]["creator"]["name"] == "Prusa: print failed"
    # disabling the skill forgets the Amazon account
    await _alexa(client, envelope(request_type="AlexaSkillEvent.SkillDisabled"))
    assert await AlexaAccount.all().count() == 0


async def test_without_the_skills_client_credentials_nothing_is_sent_and_the_pages_say_so(app, client, herald):
    owner = await make_user("owner@example.com", admin=True)
    await login(client, "owner@example.com")
    async with FakeAlexaApi() as api:
        await _alexa(client, envelope(request_type="LaunchRequest", api_endpoint=api.url))
        page = await (await client.get("/alexa/notifications")).get_data(as_text=True)
        assert 'id="not-configured"' in page and "HERALD_ALEXA_CLIENT_ID" in page
        setup = await (await client.get("/alexa/setup")).get_data(as_text=True)
        assert 'id="notifications-step"' in setup and "Not set yet." in setup
        assert "Alexa Skill Messaging" in setup
        assert re.search(r"<title>[^<]*Alexa[^<]*</title>", setup)  # the page's own blocks stay whole
    assert owner.id and api.tokens == [] and api.events == []


def test_the_skill_package_asks_for_notifications_and_publishes_the_schema():
    from skill.package import manifest

    man = manifest("https://herald.example.net/alexa")["manifest"]
    assert {"name": "alexa::devices:all:notifications:write"} in man["permissions"]
    assert man["events"]["publications"] == [{"eventName": "AMAZON.MessageAlert.Activated"}]
    assert {"eventName": "SKILL_PROACTIVE_SUBSCRIPTION_CHANGED"} in man["events"]["subscriptions"]
