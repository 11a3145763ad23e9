"""Clock times in the Echo device's own time zone (Alexa's Device Settings API), else the
account's; the API answered by a local server as Amazon documents it."""

from __future__ import annotations

import asyncio
import json

import pytest

from appliance.alexa.device_zone import DeviceTimeZones
from appliance.core.herald import herald_of
from tests.support.alexa import SKILL_ID, envelope, owner_with_printer, speech
from tests.support.amazon import FakeAlexaApi

DEVICE = "amzn1.ask.device.AEXAMPLE/with+odd=chars"


@pytest.fixture
def settings(settings):
    return settings.replace(alexa_skill_id=SKILL_ID, alexa_single_owner=True, alexa_verify_requests=False)


@pytest.fixture
async def owner(app):
    return await owner_with_printer()


async def _progress(client, api, token="api-token-1", request_type="IntentRequest", device=DEVICE):
    env = envelope(request_type=request_type, intent="ProgressIntent" if request_type == "IntentRequest" else None,
                   api_endpoint=api.url, api_access_token=token, device_id=device)
    response = await client.post("/alexa", data=json.dumps(env).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


NEW_YORK = "Prusa has printed 50 percent of benchy, about 10 minutes left, finishing around 7:10 am."
LOS_ANGELES = NEW_YORK.replace("7:10 am", "4:10 am")


async def test_the_devices_zone_is_asked_once_and_used(client, owner):
    async with FakeAlexaApi(zones={DEVICE: "America/Los_Angeles"}) as api:
        assert speech(await _progress(client, api)) == LOS_ANGELES
        assert speech(await _progress(client, api)) == LOS_ANGELES
        (call,) = api.calls  # kept per device
        assert call.method == "GET"
        assert call.path == f"/v2/devices/{DEVICE}/settings/System.timeZone"
        assert call.headers["Authorization"] == "Bearer api-token-1"
        assert call.headers["Accept"] == "application/json"
        # another device asks for itself
        api.zones["amzn1.ask.device.OTHER"] = "Europe/Berlin"
        answer = speech(await _progress(client, api, device="amzn1.ask.device.OTHER"))
        assert answer == NEW_YORK.replace("7:10 am", "1:10 pm")
        assert len(api.calls) == 2


@pytest.mark.parametrize("case", ["forbidden", "no_zone", "server_error", "unknown_zone"])
async def test_without_an_answer_the_accounts_zone_is_used(client, owner, case):
    async with FakeAlexaApi(zones={DEVICE: "Mars/Olympus_Mons" if case == "unknown_zone" else "Asia/Tokyo"},
                            status=500 if case == "server_error" else None) as api:
        if case == "no_zone":
            api.zones.clear()
        token = "someone-elses-token" if case == "forbidden" else "api-token-1"
        assert speech(await _progress(client, api, token=token)) == NEW_YORK
        assert speech(await _progress(client, api, token=token)) == NEW_YORK
        assert len(api.calls) == 1  # a miss is kept too, so /alexa does not ask on every request


async def test_a_slow_api_does_not_hold_the_answer(app, client, owner):
    herald_of(app.app).part(DeviceTimeZones).timeout = 0.2
    async with FakeAlexaApi(zones={DEVICE: "Asia/Tokyo"}, hold=asyncio.Event()) as api:
        assert speech(await _progress(client, api)) == NEW_YORK
        assert len(api.calls) == 1


async def test_no_lookup_without_an_api_token_or_for_answers_without_a_time(client, owner):
    async with FakeAlexaApi(zones={DEVICE: "Asia/Tokyo"}) as api:
        assert speech(await _progress(client, api, token="")) == NEW_YORK
        env = envelope(request_type="SessionEndedRequest", api_endpoint=api.url, api_access_token="api-token-1",
                       device_id=DEVICE)
        await client.post("/alexa", data=json.dumps(env).encode(), headers={"Content-Type": "application/json"})
        assert api.calls == []
        launch = await _progress(client, api, request_type="LaunchRequest")
        assert speech(launch) == ("Prusa is printing benchy, 50 percent done, about 10 minutes left.")
        assert len(api.calls) == 1
