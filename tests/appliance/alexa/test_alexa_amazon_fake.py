"""The local Amazon server checks what Amazon's references say it checks, so a test that
passes against it means Herald's requests have Amazon's shapes: Herald's own builders pass,
and each documented mistake is refused with the status Amazon gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from appliance.alexa.notifications import message_alert
from appliance.alexa.reminders import reminder_body
from tests.support.amazon import FakeAlexaApi

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USER = "amzn1.ask.account.TESTUSER"


async def _token(http, api, scope):
    async with http.post(f"{api.url}/auth/o2/token", data={
            "grant_type": "client_credentials", "client_id": api.client_id,
            "client_secret": api.client_secret, "scope": scope}) as response:
        assert response.status == 200
        return (await response.json())["access_token"]


async def test_proactive_events_take_herald_s_body_and_refuse_what_amazon_refuses():
    async with FakeAlexaApi() as api, aiohttp.ClientSession() as http:
        token = await _token(http, api, "alexa::proactive_events")
        url = f"{api.url}/v1/proactiveEvents/stages/development"
        auth = {"Authorization": f"Bearer {token}"}

        def body(reference="herald~1~1", **changes):
            built = message_alert(printer_name="Prusa", what="print done", alexa_user_id=USER,
                                  reference=reference, now=NOW)
            built.update(changes)
            return built

        async def post(payload, headers=auth):
            async with http.post(url, json=payload, headers=headers) as response:
                return response.status

        assert await post(body()) == 202
        assert await post(body()) == 409  # the same referenceId for the same user
        assert await post(body("herald-1-2")) == 400  # only letters, digits and ~
        assert await post(body("herald~1~3", expiryTime=body()["timestamp"])) == 400
        broken = body("herald~1~4")
        broken["event"]["payload"]["state"]["status"] = "READ"
        assert await post(broken) == 400
        assert await post(body("herald~1~5"), {"Authorization": "Bearer Atc|someone-else"}) == 403
        messaging = await _token(http, api, "alexa:skill_messaging")  # a token of another scope
        assert await post(body("herald~1~6"), {"Authorization": f"Bearer {messaging}"}) == 403


async def test_login_with_amazon_wants_a_form_and_a_known_scope():
    async with FakeAlexaApi() as api, aiohttp.ClientSession() as http:
        form = {"grant_type": "client_credentials", "client_id": api.client_id,
                "client_secret": api.client_secret, "scope": "alexa::proactive_events"}
        async with http.post(f"{api.url}/auth/o2/token", json=form) as response:
            assert response.status == 400  # JSON, not application/x-www-form-urlencoded
        async with http.post(f"{api.url}/auth/o2/token", data={**form, "scope": "profile"}) as response:
            assert response.status == 400 and (await response.json())["error"] == "invalid_scope"
        async with http.post(f"{api.url}/auth/o2/token", data={**form, "client_secret": "x"}) as response:
            assert response.status == 401 and (await response.json())["error"] == "invalid_client"


async def test_reminders_and_skill_messages_as_documented():
    async with FakeAlexaApi() as api, aiohttp.ClientSession() as http:
        reminder = reminder_body(finish_at=NOW + timedelta(hours=1), zone="Europe/Berlin", locale="de-DE",
                                 printer_name="Prusa", now=NOW)
        ok = {"Authorization": "Bearer api-token-1"}
        async with http.post(f"{api.url}/v1/alerts/reminders", json=reminder, headers=ok) as response:
            assert response.status == 200  # Amazon's SDK: create answers 200
            created = await response.json()
        assert set(created) == {"alertToken", "createdTime", "updatedTime", "status", "version", "href"}
        async with http.post(f"{api.url}/v1/alerts/reminders", json=reminder,
                             headers={"Authorization": "Bearer not-granted"}) as response:
            assert response.status == 401  # the user has not granted reminders
        zoned = {**reminder, "trigger": {**reminder["trigger"], "scheduledTime": "2026-11-22T13:00:00+01:00"}}
        async with http.post(f"{api.url}/v1/alerts/reminders", json=zoned, headers=ok) as response:
            assert response.status == 400  # an absolute trigger is local time, without an offset
        path = f"{api.url}/v1/alerts/reminders/{created['alertToken']}"
        async with http.put(path, json=reminder, headers=ok) as response:
            assert response.status == 200
        async with http.delete(path, headers=ok) as response:
            assert response.status == 200
        async with http.put(path, json=reminder, headers=ok) as response:
            assert response.status == 404

        token = await _token(http, api, "alexa:skill_messaging")
        send = f"{api.url}/v1/skillmessages/users/{USER}"
        async with http.post(send, json={"data": {"a": "b"}}, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 202  # expiresAfterSeconds is optional (3600)
        async with http.post(send, json={"data": {}, "expiresAfterSeconds": 30},
                             headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 400
        async with http.post(send, json={"data": {}}, headers={"Authorization": "Bearer Atc|wrong"}) as r:
            assert r.status == 403  # "the skill messaging authentication token is expired or not valid"
