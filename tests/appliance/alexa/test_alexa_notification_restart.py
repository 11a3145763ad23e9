"""An Alexa notification Amazon could not take yet survives a restart of the real server:
stored with its event, tried again by the next ``herald serve`` on the same data."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.appliance.printers.test_printers_live import (
    add_printer,
    browser,
    browser_login,
    create_admin,
)
from tests.conftest import free_port
from tests.support.alexa import SKILL_ID, envelope
from tests.support.amazon import FakeAlexaApi
from tests.support.printers import bearer, event_body
from tests.support.server import LiveServer


async def _alexa(http: aiohttp.ClientSession, server: LiveServer, env: dict) -> None:
    async with http.post(server.url + "/alexa", data=json.dumps(env),
                         headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200, await response.text()


async def test_a_notification_amazon_did_not_take_is_sent_after_a_restart(tmp_path):
    async with FakeAlexaApi() as api, aiohttp.ClientSession() as http:
        server = LiveServer(data_dir=tmp_path / "data", port=free_port(), env={
            "HERALD_ALEXA_SKILL_ID": SKILL_ID, "HERALD_ALEXA_VERIFY_REQUESTS": "false",
            "HERALD_ALEXA_SINGLE_OWNER": "true", "HERALD_ALEXA_CLIENT_ID": api.client_id,
            "HERALD_ALEXA_CLIENT_SECRET": api.client_secret, "HERALD_ALEXA_TOKEN_URL": f"{api.url}/auth/o2/token"})
        server.start()
        try:
            create_admin(server)
            async with browser() as owner:
                csrf = await browser_login(owner, server.url)
                key = await add_printer(owner, server.url, csrf, "Prusa")
                await _alexa(http, server, envelope(request_type="LaunchRequest", api_endpoint=api.url))
                allowed = envelope(request_type="AlexaSkillEvent.ProactiveSubscriptionChanged", api_endpoint=api.url)
                allowed["request"]["body"] = {"subscriptions": [{"eventName": "AMAZON.MessageAlert.Activated"}]}
                await _alexa(http, server, allowed)
                async with owner.post(server.url + "/alexa/notifications",
                                      data={"csrf_token": csrf, "notify": "on"}) as response:
                    assert response.status == 200 and 'id="permission-granted"' in await response.text()

            api.event_faults = [503] * 1000  # Amazon is having a bad day
            async with http.post(server.url + "/api/v1/printer/events", headers=bearer(key),
                                 json=event_body(type_="print.done")) as response:
                assert response.status == 202
            (first,) = await api.wait_for_events(1)
            assert server.stop() == 0, server.log()
            api.event_faults = []  # ... and fine again while Herald is down

            server.start()
            async with asyncio.timeout(60):
                while not api.accepted:
                    await api.wait_for_events(len(api.events) + 1)
            (accepted,) = api.accepted
            assert accepted.body["referenceId"] == first.body["referenceId"]
            assert accepted.body["event"]["payload"]["messageGroup"]["creator"]["name"] == "Prusa: print done"
        finally:
            assert server.stop() == 0, server.log()
