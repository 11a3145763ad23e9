"""OctoPrint API keys for apps, Herald's side: minted over a PluginControl, returned once, revoked with the connection.

The plugin's side is proven against a real OctoPrint in tests/e2e/test_appkeys_octoprint.py; here an
in-process fake of the PluginControl interface answers as the plugin's ``handle_control`` does.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.apps import api_keys
from appliance.apps.api_keys import PluginControlSeat, PluginUnreachable
from appliance.apps.models import AppConnection
from appliance.printers.manage import unlink_printer
from appliance.relay.commands import TunnelControl
from tests.appliance.apps.test_portal_and_api import _CSRF, make_printer
from tests.support.printers import bearer
from tests.support.users import login, make_user

START = "/appportal/v1/?appid=octopod&ReturnURL=octopod://octoeverywhere&octoPrintApiKeyAppName=OctoPod"


class FakePlugin:
    """Answers control ops as octoprint_herald.appkeys.handle_control does; can be made unreachable."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.keys: dict[str, str] = {}  # key -> app name
        self.reachable = True
        self.refuse: dict | None = None

    async def call(self, printer_id: str, op: str, args: dict) -> dict:
        self.calls.append((printer_id, op, dict(args)))
        if not self.reachable:
            raise PluginUnreachable("The printer has no tunnel.")
        if self.refuse is not None:
            return self.refuse
        if op == "mint_api_key":
            key = secrets.token_hex(16).upper()
            self.keys[key] = args["app"]
            return {"key": key}
        if op == "revoke_api_key":
            if self.keys.pop(args["key"], None) is None:
                return {"error": "not_minted", "message": "Herald did not make this key."}
            return {"revoked": True}
        return {"error": "unknown_op", "message": op}


@pytest.fixture
def plugin(herald):
    fake = FakePlugin()
    herald.part(PluginControlSeat).control = fake
    return fake


async def _printer(client, herald, *, mint: bool = True, enabled: bool = True):
    user = await make_user()
    made = await make_printer(herald, user, "Voron")
    status = {"state": "Operational", "state_id": "operational",
              "relay": {"enabled": enabled, "mint_api_keys": mint}}
    assert (await client.put("/api/v1/printer/status", headers=bearer(made.key), json=status)).status_code == 204
    await login(client)
    return made


async def _approve(client, printer_id: str):
    page = await client.get(START.replace("/appportal/v1/?", "/appportal/v1/consent?") + f"&printer={printer_id}")
    html = await page.get_data(as_text=True)
    assert page.status_code == 200, html
    form = {"csrf_token": _CSRF.search(html).group(1), "printer": printer_id, "decision": "approve",
            "appId": "octopod", "returnUrl": "octopod://octoeverywhere", "octoPrintApiKeyAppName": "OctoPod"}
    return html, await client.post("/appportal/v1/consent", form=form)


def _completion(response) -> dict[str, str]:
    assert response.status_code == 302, response.status_code
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


async def _revoke(client, connection_id: str) -> None:
    csrf = _CSRF.search(await (await client.get("/account/apps")).get_data(as_text=True)).group(1)
    response = await client.post(f"/account/app-connections/{connection_id}/revoke", form={"csrf_token": csrf})
    assert response.status_code == 302


async def test_the_key_is_minted_returned_once_sealed_and_revoked_with_the_connection(app, client, herald, plugin):
    made = await _printer(client, herald)
    consent, response = await _approve(client, made.printer.id)
    assert "gets an <strong>OctoPrint API key</strong>" in consent
    result = _completion(response)
    key = result["octoPrintApiKey"]
    (printer_id, op, args), = plugin.calls
    assert (printer_id, op) == (made.printer.id, "mint_api_key")
    assert args == {"app": f"OctoPod (Herald {result['id'][:8]})"}
    row = await AppConnection.get(id=result["id"])
    assert row.octoprint_api_key_sealed and key not in row.octoprint_api_key_sealed
    assert herald.secret_box.decrypt(row.octoprint_api_key_sealed) == key
    stored = " ".join(str(v) for v in (await AppConnection.filter(id=row.id).values())[0].values())
    assert key not in stored
    # shown once: the completion is the only place; nothing else hands it out again
    assert key not in await (await client.get("/account/apps")).get_data(as_text=True)

    await _revoke(client, result["id"])
    assert plugin.calls[-1] == (made.printer.id, "revoke_api_key", {"key": key})
    assert key not in plugin.keys
    assert (await AppConnection.get(id=row.id)).octoprint_api_key_sealed == ""


async def test_an_unreachable_printer_keeps_the_key_sealed_until_it_can_be_revoked(app, client, herald, plugin):
    made = await _printer(client, herald)
    result = _completion((await _approve(client, made.printer.id))[1])
    plugin.reachable = False
    await _revoke(client, result["id"])  # the revoke itself succeeds at once
    row = await AppConnection.get(id=result["id"])
    assert row.revoked_at is not None and row.octoprint_api_key_sealed
    assert result["octoPrintApiKey"] in plugin.keys
    plugin.reachable = True
    assert await api_keys.revoke_pending_api_keys(herald, made.printer.id) == 1
    assert result["octoPrintApiKey"] not in plugin.keys
    assert await api_keys.revoke_pending_api_keys(herald, made.printer.id) == 0


async def test_unlinking_the_printer_revokes_its_apps_keys(app, client, herald, plugin):
    made = await _printer(client, herald)
    result = _completion((await _approve(client, made.printer.id))[1])
    await unlink_printer(herald, made.printer.id)
    assert plugin.keys == {}
    assert (await AppConnection.get(id=result["id"])).octoprint_api_key_sealed == ""


async def test_deleting_the_user_revokes_their_apps_keys_and_ends_their_printers(app, client, herald, plugin):
    from appliance.accounts.models import User
    from appliance.accounts.users import delete_user
    from appliance.printers.models import Printer
    from tests.support.users import make_user as another_user

    made = await _printer(client, herald)
    result = _completion((await _approve(client, made.printer.id))[1])
    ended: list[list[str]] = []

    async def record(ids: list[str]) -> None:
        ended.append(ids)

    herald.hooks.printers_ending.append(record)  # as the relay's tunnels and Home Assistant hear it
    await another_user("admin@example.com", admin=True)
    await delete_user(herald, await User.get(id=made.printer.owner_id))
    assert plugin.keys == {}  # the OctoPrint key is gone from OctoPrint, not only from Herald
    assert plugin.calls[-1][1] == "revoke_api_key"
    assert ended == [[made.printer.id]]
    assert await Printer.filter(id=made.printer.id).count() == 0
    assert await AppConnection.filter(id=result["id"]).count() == 0


async def test_a_refusal_shows_why_and_leaves_no_connection(app, client, herald, plugin):
    made = await _printer(client, herald)
    plugin.refuse = {"error": "unknown_user", "message": "The OctoPrint user 'apps' does not exist."}
    _consent, response = await _approve(client, made.printer.id)
    html = await response.get_data(as_text=True)
    assert response.status_code == 403
    assert "could not get an OctoPrint API key for OctoPod" in html and "&#39;apps&#39; does not exist" in html
    assert await AppConnection.all().count() == 0


async def test_an_offline_plugin_is_a_503_and_no_connection(app, client, herald, plugin):
    made = await _printer(client, herald)
    plugin.reachable = False
    _consent, response = await _approve(client, made.printer.id)
    assert response.status_code == 503
    assert await AppConnection.all().count() == 0


async def test_without_the_printers_tunnel_minting_says_so(app, client, herald):
    herald.part(PluginControlSeat).control = TunnelControl(herald)  # create_app's own: no tunnel here
    made = await _printer(client, herald)
    _consent, response = await _approve(client, made.printer.id)
    assert response.status_code == 503
    assert "cannot be asked now" in await response.get_data(as_text=True)
    assert await AppConnection.all().count() == 0


@pytest.mark.parametrize("enabled, mint", [(False, False), (True, False), (False, True)])
async def test_without_the_owners_yes_the_app_gets_no_key_and_the_plugin_is_not_asked(
        app, client, herald, plugin, enabled, mint):
    made = await _printer(client, herald, enabled=enabled, mint=mint)
    consent, response = await _approve(client, made.printer.id)
    assert re.search(r"does not let Herald make one", consent)
    result = _completion(response)
    assert result["success"] == "true" and "octoPrintApiKey" not in result
    assert plugin.calls == []
    await _revoke(client, result["id"])
    assert plugin.calls == []


async def test_refusals_in_either_shape_are_read(app, client, herald, plugin):
    assert api_keys.refusal_message({"error": {"code": "not_allowed", "message": "No."}}) == "No."
    assert api_keys.refusal_message({"error": "minting_off", "message": "Off."}) == "Off."
    assert api_keys.error_code({"error": {"code": "not_minted", "message": ""}}) == "not_minted"
    made = await _printer(client, herald)
    plugin.refuse = {"error": {"code": "not_allowed", "message": "Minting is off here."}}
    _consent, response = await _approve(client, made.printer.id)
    assert response.status_code == 403 and "Minting is off here." in await response.get_data(as_text=True)
    # a revoke the plugin answers with {} (no error) counts as done
    plugin.refuse = None
    result = _completion((await _approve(client, made.printer.id))[1])
    plugin.refuse = {}
    await _revoke(client, result["id"])
    assert (await AppConnection.get(id=result["id"])).octoprint_api_key_sealed == ""
