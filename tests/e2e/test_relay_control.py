"""Pause, resume and cancel a real print from Herald, end to end (issue 19's control part).

A real OctoPrint (virtual printer) with the plugin and its relay on, behind a real Herald under
hypercorn that publishes to a real mosquitto: a print started through OctoPrint's own API is
paused from Herald's JSON API (a personal token with ``printers:control``), resumed from the
printer page's button (session + CSRF) and cancelled by pressing Home Assistant's button (an MQTT
message on the button's discovered ``command_topic``); a second print is paused, resumed and, once
the confirmation was answered (no, then yes), cancelled by Alexa: requests that bespoken's
virtual-alexa makes from Herald's interaction model and posts to Herald's ``/alexa`` (verification
off, single-owner mode, as the other live Alexa tests do). OctoPrint itself reports each state; every
command is in the printer's events. Without the plugin's consent, or without Herald's opt-in,
each way is refused and OctoPrint keeps printing.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiomqtt
import pytest
import requests

from skill.package import interaction_model
from tests.e2e.test_plugin_octoprint import HeraldOwner, gcode, link, plugin_state, wait_for
from tests.e2e.test_relay_octoprint import EMAIL, PASSWORD
from tests.support.alexa import SKILL_ID
from tests.support.mqtt import mosquitto  # noqa: F401  (fixture)
from tests.support.octoprint import OctoPrintServer, free_port, running
from tests.support.server import LiveServer, serving_with_admin
from tests.support.simulator import drive, said

pytestmark = pytest.mark.slow

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def herald(tmp_path: Path, mosquitto):  # noqa: F811
    with serving_with_admin(tmp_path / "herald", free_port(), EMAIL, PASSWORD,
                            env={"HERALD_MQTT_HOST": "127.0.0.1", "HERALD_MQTT_PORT": str(mosquitto.port),
                                 "HERALD_ALEXA_SKILL_ID": SKILL_ID, "HERALD_ALEXA_VERIFY_REQUESTS": "false",
                                 "HERALD_ALEXA_SINGLE_OWNER": "true"}) as server:
        yield server


@pytest.fixture
def octoprint(tmp_path: Path, herald: LiveServer):
    # The plugin's consent starts off; the test turns it on through OctoPrint's settings API.
    server = OctoPrintServer(tmp_path / "octoprint", plugin_settings={
        "herald_url": herald.url, "printer_name": "Control Prusa", "interval_printing": 5, "interval_idle": 5,
        "relay": {"enabled": True, "allow_control": False}})
    server.prepare()
    with running(server, "octoprint-relay-control"):
        yield server


def _relay(owner: HeraldOwner, printer_id: str) -> dict:
    return (owner.printer(printer_id).get("status") or {}).get("relay") or {}


def _set_plugin_consent(octoprint: OctoPrintServer, allow: bool) -> None:
    response = octoprint.api("POST", "/api/settings", json={"plugins": {"herald": {"relay": {"allow_control": allow}}}})
    assert response.status_code == 200, response.text


def _page_post(owner: HeraldOwner, printer_id: str, path: str, **data) -> requests.Response:
    token = owner._csrf(f"/printers/{printer_id}")
    return owner.session.post(f"{owner.base_url}/printers/{printer_id}/{path}", allow_redirects=False, timeout=60,
                              data={"csrf_token": token, **data})


def _token(owner: HeraldOwner, scopes: list[str]) -> dict[str, str]:
    csrf = owner._csrf("/account")
    response = owner.session.post(owner.base_url + "/api/v1/tokens", timeout=10, headers={"X-CSRF-Token": csrf},
                                  json={"name": "control " + " ".join(scopes), "scopes": scopes})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _api_job(herald: LiveServer, printer_id: str, headers: dict[str, str], action) -> requests.Response:
    return requests.post(f"{herald.url}/api/v1/printers/{printer_id}/job", json={"action": action},
                         headers=headers, timeout=60)


def _octoprint_state(octoprint: OctoPrintServer) -> str:
    return octoprint.job()["state"]


def _commands(herald: LiveServer, printer_id: str, headers: dict[str, str]) -> list[dict]:
    response = requests.get(f"{herald.url}/api/v1/printers/{printer_id}/events", params={"type": "printer.command"},
                            headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return [e["payload"] for e in response.json()["events"][::-1]]


async def _press(port: int, printer_id: str, key: str) -> dict:
    """What Home Assistant does: read the button's discovery config, publish its payload_press."""
    node = "herald_" + printer_id.replace("-", "")
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"homeassistant/button/{node}/{key}/config")
        async with asyncio.timeout(30):
            async for message in client.messages:
                if message.payload:
                    config = json.loads(message.payload)
                    break
        await client.publish(config["command_topic"], config["payload_press"], qos=1)
    return config


async def _buttons(port: int, printer_id: str) -> set[str]:
    """The printer's button entities the broker holds retained (what Home Assistant would show)."""
    node = "herald_" + printer_id.replace("-", "")
    found: set[str] = set()
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"homeassistant/button/{node}/+/config")
        try:
            async with asyncio.timeout(2):
                async for message in client.messages:
                    if message.payload:
                        found.add(str(message.topic).split("/")[-2])
        except TimeoutError:
            pass
    return found


def _herald_state(owner: HeraldOwner, printer_id: str) -> str:
    """The printer's state in Herald's view (the plugin's last status push), which Alexa's answers read."""
    return (owner.printer(printer_id).get("status") or {}).get("state_id") or ""


def _alexa(herald: LiveServer, model: Path, turns: list[str]) -> list[dict]:
    """What Alexa sends for these turns, made by virtual-alexa from the model, to the live Herald."""
    return asyncio.run(drive(model=model, locale="en-US", url=f"{herald.url}/alexa", application_id=SKILL_ID,
                             turns=turns))


def test_pause_resume_and_cancel_a_real_print_from_the_api_the_page_mqtt_and_alexa(
        herald: LiveServer, octoprint: OctoPrintServer, mosquitto, tmp_path: Path):  # noqa: F811
    owner = HeraldOwner(herald.url).login()
    printer_id = link(octoprint, owner)
    wait_for(lambda: (plugin_state(octoprint).get("relay_tunnel") or {}).get("connected"), 60,
             "the plugin's relay tunnel to open")
    control = _token(owner, ["printers:control", "printers:read"])
    reader = _token(owner, ["printers:read"])

    octoprint.upload_and_print("control.gcode", gcode(3000))
    wait_for(lambda: _octoprint_state(octoprint) == "Printing", 60, "OctoPrint to print")

    # Refused: the plugin's consent is off (Herald's opt-in cannot even be turned on usefully yet)
    refused = _api_job(herald, printer_id, control, "pause")
    assert refused.status_code == 403 and refused.json()["error"] == "control_off_at_printer", refused.text
    _set_plugin_consent(octoprint, True)
    wait_for(lambda: _relay(owner, printer_id).get("allow_control"), 60, "the status push saying control is allowed")
    # Refused: Herald's own opt-in for the printer is off by default
    refused = _api_job(herald, printer_id, control, "pause")
    assert refused.status_code == 403 and refused.json()["error"] == "control_off_in_herald", refused.text
    assert _page_post(owner, printer_id, "job", action="pause").status_code == 403
    assert asyncio.run(_buttons(mosquitto.port, printer_id)) == set()  # no buttons without both yeses
    # The wrong scope, and a bad action, are refused too
    assert _api_job(herald, printer_id, reader, "pause").status_code == 403  # insufficient_scope
    bad = _api_job(herald, printer_id, control, "start")
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "action", bad.text
    assert _octoprint_state(octoprint) == "Printing"

    opted = _page_post(owner, printer_id, "control", allow="on")
    assert opted.status_code == 303, opted.text
    assert 'id="job-pause"' in owner.session.get(f"{herald.url}/printers/{printer_id}", timeout=10).text

    paused = _api_job(herald, printer_id, control, "pause")
    assert paused.status_code == 200 and paused.json() == {"action": "pause", "state": "printing"}, paused.text
    wait_for(lambda: _octoprint_state(octoprint) == "Paused", 60, "OctoPrint to report Paused")
    again = _api_job(herald, printer_id, control, "pause")  # the printer's state does not allow it
    assert again.status_code == 403 and again.json()["error"] == "printer_refused", again.text

    resumed = _page_post(owner, printer_id, "job", action="resume")
    assert resumed.status_code == 303, resumed.text
    wait_for(lambda: _octoprint_state(octoprint) == "Printing", 60, "OctoPrint to print again")

    wait_for(lambda: asyncio.run(_buttons(mosquitto.port, printer_id)) == {"pause_print", "resume_print",
                                                                          "cancel_print"},
             60, "Home Assistant's buttons to be discovered")
    config = asyncio.run(_press(mosquitto.port, printer_id, "cancel_print"))
    assert config["payload_press"] == "cancel"
    wait_for(lambda: _octoprint_state(octoprint) == "Operational", 60, "OctoPrint to cancel the print")

    # Alexa, on a second print: each answer reads the state the plugin last pushed, so each turn
    # waits for Herald to have heard OctoPrint's
    model = tmp_path / "en-US.json"
    model.write_text(json.dumps(interaction_model("en-US", [("Control Prusa", None)])), encoding="utf-8")
    wait_for(lambda: _herald_state(owner, printer_id) == "operational", 60, "Herald to hear the print ended")
    octoprint.upload_and_print("alexa.gcode", gcode(3000))
    wait_for(lambda: _herald_state(owner, printer_id) == "printing", 60, "Herald to hear OctoPrint print")
    (paused,) = _alexa(herald, model, ["ask herald to pause the print"])
    assert said(paused) == "Pausing the print on Control Prusa.", paused
    wait_for(lambda: _octoprint_state(octoprint) == "Paused", 60, "OctoPrint to pause for Alexa")
    wait_for(lambda: _herald_state(owner, printer_id) == "paused", 60, "Herald to hear OctoPrint pause")
    (resumed,) = _alexa(herald, model, ["ask herald to resume printing on control prusa"])
    assert said(resumed) == "Resuming the print on Control Prusa.", resumed
    wait_for(lambda: _octoprint_state(octoprint) == "Printing", 60, "OctoPrint to print again for Alexa")
    wait_for(lambda: _herald_state(owner, printer_id) == "printing", 60, "Herald to hear OctoPrint print again")
    asked, denied = _alexa(herald, model, ["ask herald to cancel the print", "confirm:no"])
    assert said(asked) == "Do you really want to cancel the print on Control Prusa?", asked
    assert asked["response"]["response"]["directives"][0]["type"] == "Dialog.ConfirmIntent"
    assert said(denied) == "OK, the print goes on." and denied["request"]["request"]["intent"][
        "confirmationStatus"] == "DENIED"
    assert _octoprint_state(octoprint) == "Printing"  # nothing was sent: no cancel in the events below
    asked, confirmed = _alexa(herald, model, ["ask herald to stop the print job", "confirm:yes"])
    assert said(asked) == "Do you really want to cancel the print on Control Prusa?", asked
    assert said(confirmed) == "Cancelling the print on Control Prusa.", confirmed
    wait_for(lambda: _octoprint_state(octoprint) == "Operational", 60, "OctoPrint to cancel the print for Alexa")

    # Refusals before the command was sent (no consent, wrong scope, bad action) are not events;
    # the printer's own refusal is.
    commands = wait_for(lambda: (c := _commands(herald, printer_id, reader)) and len(c) >= 7 and c, 30,
                        "every command in the printer's events")
    assert [(c["action"], c["source"], c["result"]) for c in commands] == [
        ("pause", "api", "done"), ("pause", "api", "refused"), ("resume", "web", "done"), ("cancel", "mqtt", "done"),
        ("pause", "alexa", "done"), ("resume", "alexa", "done"), ("cancel", "alexa", "done")]

    # Consent withdrawn at the printer: refused again, and the buttons go
    _set_plugin_consent(octoprint, False)
    wait_for(lambda: not _relay(owner, printer_id).get("allow_control"), 60, "the status push withdrawing control")
    assert _api_job(herald, printer_id, control, "pause").json()["error"] == "control_off_at_printer"
    wait_for(lambda: asyncio.run(_buttons(mosquitto.port, printer_id)) == set(), 60, "the buttons to be removed")
