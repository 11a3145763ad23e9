"""Alexa reminders ("tell me when my print is done"): set through the Reminders API with the
request's token, the reminders permission asked for when missing, moved out of session through
the Skill Messaging API when the estimate moves, removed when the print fails or is cancelled;
against a local server answering as Amazon documents."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance.alexa.models import AlexaReminder
from appliance.alexa.reminders import PERMISSION, ReminderKeeper
from appliance.core.herald import herald_of
from tests.support.alexa import SKILL_ID, envelope
from tests.support.amazon import FakeAlexaApi
from tests.support.printers import STATUS, bearer, event_body, make_printer
from tests.support.users import login, make_user

ALEXA_USER = "amzn1.ask.account.TESTUSER"
DEVICE = "amzn1.ask.device.TEST"


@pytest.fixture
def settings(settings):
    return settings.replace(alexa_skill_id=SKILL_ID, alexa_single_owner=True, alexa_verify_requests=False)


async def _alexa(client, env):
    response = await client.post("/alexa", data=json.dumps(env).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


def _configure(app, herald, api, client):
    herald_of(app.app).settings = herald.settings.replace(
        alexa_client_id=api.client_id, alexa_client_secret=api.client_secret,
        alexa_token_url=f"{api.url}/auth/o2/token", alexa_api_base="https://unused.invalid")
    api.skill_id = SKILL_ID

    async def deliver(env):  # "Alexa" sends the skill its message
        await _alexa(client, env)
    api.deliver = deliver


async def _status(client, key, left):
    status = {**STATUS, "job": {**STATUS["job"], "print_time_left": left}}
    response = await client.put("/api/v1/printer/status", json=status, headers=bearer(key))
    assert response.status_code == 204, await response.get_data(as_text=True)


async def _event(client, key, number, type_):
    body = event_body(event_id=f"7b0e0b8e-0000-4000-8000-{number:012d}", type_=type_)
    response = await client.post("/api/v1/printer/events", json=body, headers=bearer(key))
    assert response.status_code == 202, await response.get_data(as_text=True)


async def eventually(check, seconds: float = 30.0) -> None:
    """Wait until ``check()`` holds (it reads the database; no wall-clock claim is made)."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the state is in the database, not an event
            await asyncio.sleep(0.05)


async def _row_says(**values) -> bool:
    reminder = await AlexaReminder.first()
    return reminder is not None and all(getattr(reminder, k) == v for k, v in values.items())


def _remind(api, *, printer=None, locale="en-US", token="api-token-1"):
    return envelope(intent="RemindWhenDoneIntent", printer=printer, locale=locale, api_endpoint=api.url,
                    api_access_token=token, device_id=DEVICE)


def _speech(answer):
    """What Alexa says: the SSML must be one <speak> document, its names escaped once."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(answer["response"]["outputSpeech"]["ssml"])
    assert root.tag == "speak"
    return "".join(root.itertext())


@pytest.fixture
async def printing(client, herald):
    user = await make_user("owner@example.com", admin=True)
    _, key = await make_printer(herald, user, "Prusa")
    await _status(client, key, 2400)
    return user, key


async def test_the_answer_is_one_ssml_document_saying_a_name_with_an_ampersand_as_written(app, client, herald,
                                                                                       printing):
    async with FakeAlexaApi(zones={DEVICE: "Europe/Berlin"}) as api:
        _configure(app, herald, api, client)
        answer = await _alexa(client, _remind(api, printer="tom & jerry"))
    assert "a printer called tom & jerry." in _speech(answer)
    assert api.reminder_calls == []


def _scheduled(body) -> datetime:
    trigger = body["trigger"]
    return datetime.fromisoformat(trigger["scheduledTime"]).replace(tzinfo=ZoneInfo(trigger["timeZoneId"]))


@pytest.mark.parametrize(("locale", "said"), [("en-US", "remind you when Prusa is done"),
                                               ("en-GB", "remind you when Prusa is done"),
                                               ("de-DE", "erinnere dich, wenn Prusa fertig ist")])
async def test_a_reminder_is_set_at_the_expected_finish_in_the_devices_zone(app, client, herald, clock, printing,
                                                                           locale, said):
    user, _ = printing
    async with FakeAlexaApi(zones={DEVICE: "Europe/Berlin"}) as api:
        _configure(app, herald, api, client)
        answer = await _alexa(client, _remind(api, printer="prusa", locale=locale))
    assert said in _speech(answer) and answer["response"]["shouldEndSession"] is True
    (call,) = api.reminder_calls
    assert (call.method, call.path) == ("POST", "/v1/alerts/reminders")
    assert call.headers["Authorization"] == "Bearer api-token-1"
    assert call.headers["Content-Type"].startswith("application/json")
    body = call.body
    assert body["trigger"]["type"] == "SCHEDULED_ABSOLUTE" and body["trigger"]["timeZoneId"] == "Europe/Berlin"
    assert _scheduled(body) == clock.now() + timedelta(seconds=2400)
    (content,) = body["alertInfo"]["spokenInfo"]["content"]
    assert content["locale"] == locale and "Prusa" in content["text"]
    assert body["pushNotification"] == {"status": "ENABLED"}
    (reminder,) = await AlexaReminder.all()
    assert reminder.alert_token in api.reminders and reminder.user_id == user.id
    assert (reminder.alexa_user_id, reminder.job, reminder.time_zone) == (ALEXA_USER, "benchy.gcode", "Europe/Berlin")


async def test_without_the_reminders_permission_herald_asks_for_it_and_says_so(app, client, herald, printing):
    async with FakeAlexaApi() as api:
        _configure(app, herald, api, client)
        answer = await _alexa(client, _remind(api, token="api-token-without-permission"))
        assert len(api.reminder_calls) == 1  # Amazon answered 401: not granted
        response = answer["response"]
        assert "needs permission to set reminders" in _speech(answer)
        assert response["card"] == {"type": "AskForPermissionsConsent", "permissions": [PERMISSION]}
        (directive,) = response["directives"]
        assert directive["type"] == "Connections.SendRequest" and directive["name"] == "AskFor"
        assert directive["payload"] == {"@type": "AskForPermissionsConsentRequest", "@version": "2",
                                        "permissionScopes": [{"permissionScope": PERMISSION,
                                                              "consentLevel": "ACCOUNT"}]}
        assert response["shouldEndSession"] is True
        assert await AlexaReminder.all().count() == 0

        # the user says yes: Alexa answers the directive, with a token that now carries the permission
        accepted = envelope(request_type="Connections.Response", api_endpoint=api.url,
                            api_access_token="api-token-1", device_id=DEVICE)
        accepted["request"].update(name="AskFor", token=directive["token"], status={"code": "200", "message": "OK"},
                                   payload={"permissionScope": PERMISSION, "status": "ACCEPTED"})
        answer = await _alexa(client, accepted)
        assert "remind you when Prusa is done" in _speech(answer)
        assert await AlexaReminder.all().count() == 1

        denied = {**accepted, "request": {**accepted["request"], "payload": {"permissionScope": PERMISSION,
                                                                             "status": "DENIED"}}}
        assert "no reminder" in _speech(await _alexa(client, denied))
        assert await AlexaReminder.all().count() == 1


async def test_a_moved_estimate_moves_the_reminder_through_skill_messaging_and_a_cancel_removes_it(
        app, client, herald, clock, printing):
    _, key = printing
    async with FakeAlexaApi() as api:
        _configure(app, herald, api, client)
        await _alexa(client, _remind(api))
        (reminder,) = await AlexaReminder.all()
        set_for = _scheduled(api.reminders[reminder.alert_token])

        await _status(client, key, 2400 + 20 * 60)  # twenty minutes later than thought
        calls = await api.wait_for(api.reminder_calls, 2)
        await _status(client, key, 2400 + 21 * 60)  # a minute more: not worth a message
        await _event(client, key, 1, "print.cancelled")
        calls = await api.wait_for(api.reminder_calls, 3)

    (token,) = api.tokens
    assert token.body == {"grant_type": "client_credentials", "client_id": api.client_id,
                          "client_secret": api.client_secret, "scope": "alexa:skill_messaging"}
    update_message, delete_message = api.messages  # in order, and nothing for the one-minute move
    for message in api.messages:
        assert (message.method, message.path) == ("POST", f"/v1/skillmessages/users/{ALEXA_USER}")
        assert message.headers["Authorization"] == "Bearer Atc|messaging-1"
        assert 60 <= message.body["expiresAfterSeconds"] <= 86400
    # a message names the reminder and the change it is for; the wish itself is in the row
    assert update_message.body["data"] == {"kind": "herald.reminder", "reminder": reminder.id, "revision": 1}
    assert delete_message.body["data"] == {"kind": "herald.reminder", "reminder": reminder.id, "revision": 2}
    put, delete = calls[1], calls[2]
    assert (put.method, put.path) == ("PUT", f"/v1/alerts/reminders/{reminder.alert_token}")
    assert put.headers["Authorization"] == "Bearer api-token-message-1"  # the fresh token the message carried
    assert _scheduled(put.body) == set_for + timedelta(minutes=20)
    assert (delete.method, delete.path) == ("DELETE", f"/v1/alerts/reminders/{reminder.alert_token}")
    assert delete.headers["Authorization"] == "Bearer api-token-message-2"
    assert api.reminders == {}
    assert await AlexaReminder.all().count() == 0
    assert herald_of(app.app).part(ReminderKeeper).messages_sent == 2


@pytest.mark.parametrize(("ending", "removed"), [("print.failed", True), ("print.done", False)])
async def test_a_failed_print_removes_the_reminder_and_a_finished_one_leaves_it(app, client, herald, printing,
                                                                              ending, removed):
    _, key = printing
    async with FakeAlexaApi() as api:
        _configure(app, herald, api, client)
        await _alexa(client, _remind(api))
        await _event(client, key, 1, ending)
        await _event(client, key, 2, "print.started")
        # a new reminder proves the worker went past the print's end
        await _status(client, key, 2400)
        await _alexa(client, _remind(api))
        await _event(client, key, 3, "print.cancelled")
        await api.wait_for(api.messages, 2 if removed else 1)
        await api.wait_for(api.reminder_calls, 4 if removed else 3)
    deletes = [c for c in api.reminder_calls if c.method == "DELETE"]
    assert len(deletes) == (2 if removed else 1)
    assert len(api.reminders) == (0 if removed else 1)  # Alexa still speaks the finished print's reminder


async def test_the_skill_package_asks_for_reminders_and_the_setup_page_explains_the_steps(app, client, herald):
    from skill.package import manifest

    man = manifest("https://herald.example.net/alexa")["manifest"]
    assert {"name": PERMISSION} in man["permissions"]
    assert {"name": "alexa::devices:all:notifications:write"} in man["permissions"]
    await make_user("owner@example.com", admin=True)
    await login(client, "owner@example.com")
    setup = await (await client.get("/alexa/setup")).get_data(as_text=True)
    step = setup.split('id="reminders-step"', 1)[1].split("</section>", 1)[0]
    assert PERMISSION in step and "Alexa Skill Messaging" in step and "Not set yet" in step
    async with FakeAlexaApi() as api:
        _configure(app, herald, api, client)
        setup = await (await client.get("/alexa/setup")).get_data(as_text=True)
    step = setup.split('id="reminders-step"', 1)[1].split("</section>", 1)[0]
    assert "Both are set." in step


async def test_without_client_credentials_a_moved_estimate_sends_nothing(app, client, herald, printing):
    _, key = printing
    async with FakeAlexaApi() as api:
        await _alexa(client, _remind(api))  # no client id and secret: set, but not kept in step
        assert await AlexaReminder.all().count() == 1
        await _status(client, key, 2400 + 20 * 60)
        await eventually(lambda: _row_says(revision=1, last_error="no client credentials"))
        await _event(client, key, 1, "print.cancelled")
        await eventually(lambda: _row_says(revision=2, remove=True, applied_revision=0))
    assert api.messages == [] and api.tokens == [] and len(api.reminder_calls) == 1


async def test_with_two_printers_printing_and_no_name_herald_asks_which_and_disabling_forgets(
        app, client, herald, printing):
    user, _ = printing
    _, other = await make_printer(herald, user, "Voron")
    await _status(client, other, 600)
    async with FakeAlexaApi() as api:
        _configure(app, herald, api, client)
        answer = await _alexa(client, _remind(api))
        assert "Several printers are printing" in _speech(answer) and api.reminder_calls == []
        answer = await _alexa(client, _remind(api, printer="voron", locale="de-DE"))
        assert "wenn Voron fertig ist" in _speech(answer)
        (call,) = api.reminder_calls
        assert call.body["alertInfo"]["spokenInfo"]["content"] == [
            {"locale": "de-DE", "text": "Voron ist mit dem Druck fertig."}]
        assert await AlexaReminder.all().count() == 1
        await _alexa(client, envelope(request_type="AlexaSkillEvent.SkillDisabled"))
    assert await AlexaReminder.all().count() == 0
