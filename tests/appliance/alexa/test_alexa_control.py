"""Alexa pauses, resumes and cancels a print (appliance/alexa/control.py): through Herald's one control
rule with source ``alexa``, the cancel only once Alexa confirmed it, every outcome spoken in the
request's locale. The plugin is played over a real tunnel (appliance/relay/tunnel.py) as the wire
protocol says it answers ``job`` (docs/relay.md); bespoken's virtual-alexa drives the intents from
Herald's interaction models in every locale, the confirmation answered yes and no."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from appliance.core.secrets import token_hash
from appliance.printers.models import Event, Printer
from appliance.relay import framing
from appliance.relay.registry import TunnelRegistry
from appliance.relay.tunnel import Tunnel
from skill import LOCALES
from skill import phrases as ph
from skill.package import interaction_model
from tests.support.alexa import SKILL_ID, envelope
from tests.support.printers import STATUS, bearer, make_printer
from tests.support.simulator import drive, said
from tests.support.users import make_user


@pytest.fixture
def settings(settings):
    return settings.replace(alexa_skill_id=SKILL_ID, alexa_single_owner=True, alexa_verify_requests=False)


class Plugin:
    """The plugin's end of the tunnel: answers ``job`` as the plugin does (its state before, or an error)."""

    def __init__(self, printer_id: str, key: str) -> None:
        self.jobs: list[str] = []
        self.refuse: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self.tunnel = Tunnel(printer_id, send_text=self._text, send_bytes=self._bytes, close=self._close,
                             peer_window=framing.DEFAULT_WINDOW, key_digest=token_hash(key))

    async def _text(self, message: str) -> None:
        op = json.loads(message)
        if op.get("op") != "request" or op.get("command") != "job":
            return
        self.jobs.append(op["args"]["action"])
        answer = ({"error": {"code": "not_allowed", "message": self.refuse}} if self.refuse
                  else {"result": {"state": "printing"}})
        task = asyncio.create_task(self.tunnel.handle(framing.encode_op("response", id=op["id"], **answer)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bytes(self, message: bytes) -> None:
        pass

    async def _close(self, code: int, reason: str) -> None:
        pass


async def _status(client, key, state="printing", allow=True):
    status = {**STATUS, "relay": {"enabled": True, "allow_control": allow}}
    if state == "paused":
        status.update(state="Paused", state_id="paused")
    elif state == "idle":
        status.update(state="Operational", state_id="operational", job={"file": None, "progress": None})
    response = await client.put("/api/v1/printer/status", json=status, headers=bearer(key))
    assert response.status_code == 204, await response.get_data(as_text=True)


async def _alexa(client, env):
    response = await client.post("/alexa", data=json.dumps(env).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


def _said(answer) -> str:
    return answer["response"]["outputSpeech"]["ssml"].removeprefix("<speak>").removesuffix("</speak>")


async def _commands(printer_id):
    events = await Event.filter(printer_id=printer_id, type="printer.command").order_by("id")
    return [(e.payload["action"], e.payload["source"], e.payload["result"]) for e in events]


@pytest.fixture
async def prusa(client, herald):
    """The admin's "Prusa", printing, both consents given, its plugin on a tunnel."""
    user = await make_user("owner@example.com", admin=True)
    printer, key = await make_printer(herald, user, "Prusa")
    await _status(client, key)
    await Printer.filter(id=printer.id).update(allow_control=True)
    plugin = Plugin(printer.id, key)  # opened with the printer's key, as the plugin's tunnel is
    await herald.part(TunnelRegistry).attach(plugin.tunnel)
    return printer, key, plugin


def _intent(name, locale, printer=None, status="NONE", attributes=None):
    env = envelope(intent=name, printer=printer, locale=locale, session_attributes=attributes)
    env["request"]["intent"]["confirmationStatus"] = status
    return env


@pytest.mark.parametrize("locale", LOCALES)
async def test_pause_resume_and_a_confirmed_cancel_reach_the_printer(client, prusa, locale):
    printer, key, plugin = prusa
    phrases, named = ph.for_locale(locale), {"name": "Prusa"}
    assert _said(await _alexa(client, _intent("PauseIntent", locale))) == phrases.control_done("pause", named)
    await _status(client, key, "paused")
    paused = await _alexa(client, _intent("ResumeIntent", locale, printer="prusa"))
    assert _said(paused) == phrases.control_done("resume", named) and paused["response"]["shouldEndSession"]
    await _status(client, key, "printing")

    asked = await _alexa(client, _intent("CancelPrintIntent", locale))
    assert _said(asked) == phrases.confirm_cancel(named)
    (directive,) = asked["response"]["directives"]
    assert directive["type"] == "Dialog.ConfirmIntent"
    assert directive["updatedIntent"]["name"] == "CancelPrintIntent"
    assert directive["updatedIntent"]["slots"]["printer"]["value"] == "Prusa"
    assert "shouldEndSession" not in asked["response"]
    assert plugin.jobs == ["pause", "resume"]  # nothing sent yet

    denied = await _alexa(client, _intent("CancelPrintIntent", locale, printer="Prusa", status="DENIED",
                                          attributes=asked["sessionAttributes"]))
    assert _said(denied) == phrases.cancel_denied()
    assert plugin.jobs == ["pause", "resume"]

    done = await _alexa(client, _intent("CancelPrintIntent", locale, printer="Prusa", status="CONFIRMED",
                                        attributes=asked["sessionAttributes"]))
    assert _said(done) == phrases.control_done("cancel", named)
    assert plugin.jobs == ["pause", "resume", "cancel"]
    assert await _commands(printer.id) == [("pause", "alexa", "done"), ("resume", "alexa", "done"),
                                           ("cancel", "alexa", "done")]


@pytest.mark.parametrize("locale", LOCALES)
async def test_every_refusal_is_spoken_and_nothing_is_sent(client, herald, prusa, locale):
    printer, key, plugin = prusa
    phrases, named = ph.for_locale(locale), {"name": "Prusa"}

    async def say(intent, **kwargs):
        answer = await _alexa(client, _intent(intent, locale, **kwargs))
        assert answer["response"]["shouldEndSession"] is True
        return _said(answer)

    assert await say("ResumeIntent") == phrases.control_not_paused(named)
    await _status(client, key, "paused")
    assert await say("PauseIntent") == phrases.control_already_paused(named)
    await _status(client, key, "idle")
    assert await say("CancelPrintIntent") == phrases.control_nothing(named)
    assert await say("PauseIntent") == phrases.control_nothing(named)
    await _status(client, key, "printing", allow=False)
    assert await say("PauseIntent") == phrases.control_off_at_printer(named)
    await _status(client, key, "printing")
    await Printer.filter(id=printer.id).update(allow_control=False)
    assert await say("CancelPrintIntent") == phrases.control_off_in_herald(named)  # before asking to confirm
    assert plugin.jobs == [] and await _commands(printer.id) == []

    await Printer.filter(id=printer.id).update(allow_control=True)
    plugin.refuse = "Printer is not printing"
    assert await say("PauseIntent") == phrases.control_refused(named)
    herald.part(TunnelRegistry).detach(plugin.tunnel)
    assert await say("PauseIntent") == phrases.control_unreachable(named)
    assert await _commands(printer.id) == [("pause", "alexa", "refused"), ("pause", "alexa", "unavailable")]


async def test_with_two_printers_herald_asks_which_and_the_answer_carries_the_command(client, herald, prusa):
    printer, key, plugin = prusa
    user = await printer.owner
    other, other_key = await make_printer(herald, user, "Voron")
    await _status(client, other_key)
    asked = await _alexa(client, _intent("PauseIntent", "en-US"))
    assert _said(asked) == "Which printer: Prusa or Voron?" and asked["response"]["shouldEndSession"] is False
    assert asked["sessionAttributes"]["pending_intent"] == "PauseIntent"
    answer = await _alexa(client, _intent("PrinterStatusIntent", "en-US", printer="prusa",
                                          attributes=asked["sessionAttributes"]))
    assert _said(answer) == "Pausing the print on Prusa."
    assert plugin.jobs == ["pause"]
    unknown = await _alexa(client, _intent("PauseIntent", "en-US", printer="toaster"))
    assert _said(unknown).startswith("I couldn't find a printer called toaster.")
    # without a pending command, a printer's name is still a status question for the skill
    status = await _alexa(client, _intent("PrinterStatusIntent", "en-US", printer="voron"))
    assert _said(status).startswith("Voron is printing")
    assert plugin.jobs == ["pause"]


async def test_without_a_linked_account_alexa_asks_to_link(client, herald, settings, app):
    from appliance.core.herald import herald_of

    herald_of(app.app).settings = herald.settings.replace(alexa_single_owner=False)
    answer = await _alexa(client, _intent("PauseIntent", "de-DE"))
    assert _said(answer) == ph.for_locale("de-DE").link_account()
    assert answer["response"]["card"] == {"type": "LinkAccount"}


# virtual-alexa, from the models: (turn, what Alexa says), the printer named or not.
SIMULATED = {
    "en": [("ask herald to pause the print", "Pausing the print on Prusa."),
           ("ask herald to resume printing on prusa", "Resuming the print on Prusa."),
           ("ask herald to cancel the print", "Do you really want to cancel the print on Prusa?"),
           ("confirm:no", "OK, the print goes on."),
           ("ask herald to stop the print job on prusa", "Do you really want to cancel the print on Prusa?"),
           ("confirm:yes", "Cancelling the print on Prusa.")],
    "de": [("pausiere den druck", "Ich pausiere den Druck auf Prusa."),
           ("setze den druck auf prusa fort", "Ich setze den Druck auf Prusa fort."),
           ("brich den druck ab", "Möchtest du den Druck auf Prusa wirklich abbrechen?"),
           ("confirm:no", "Gut, der Druck läuft weiter."),
           ("brich den druck auf prusa ab", "Möchtest du den Druck auf Prusa wirklich abbrechen?"),
           ("confirm:yes", "Ich breche den Druck auf Prusa ab.")],
}


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_simulator_drives_the_control_intents_and_the_cancel_confirmation(client, prusa, locale,
                                                                                   tmp_path):
    printer, key, plugin = prusa
    model = tmp_path / f"{locale}.json"
    model.write_text(json.dumps(interaction_model(locale, [("Prusa", None)]), ensure_ascii=False), encoding="utf-8")

    async def forward(request: web.Request) -> web.Response:  # virtual-alexa's HTTP to Herald's /alexa
        envelope = await request.json()
        return web.json_response(await _alexa(client, envelope))

    statuses = iter(["paused", "printing"])

    async def after() -> None:  # OctoPrint's next status, as the plugin would push it
        await _status(client, key, next(statuses))

    server = web.Application()
    server.router.add_post("/alexa", forward)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/alexa"
    turns = SIMULATED[locale[:2]]
    try:
        # one turn at a time, so the printer's state follows as OctoPrint's would
        first = await drive(model=model, locale=locale, url=url, application_id=SKILL_ID, turns=[turns[0][0]])
        await after()
        second = await drive(model=model, locale=locale, url=url, application_id=SKILL_ID, turns=[turns[1][0]])
        await after()
        rest = await drive(model=model, locale=locale, url=url, application_id=SKILL_ID,
                           turns=[t for t, _ in turns[2:]])
    finally:
        await runner.cleanup()
    results = first + second + rest
    assert [said(r) for r in results] == [answer for _, answer in turns]
    intents = [r["request"]["request"]["intent"] for r in results]
    assert [i["name"] for i in intents] == ["PauseIntent", "ResumeIntent"] + ["CancelPrintIntent"] * 4
    assert [i["confirmationStatus"] for i in intents] == ["NONE", "NONE", "NONE", "DENIED", "NONE", "CONFIRMED"]
    assert intents[5]["slots"]["printer"]["value"] == "Prusa"  # the confirmed intent names its printer
    assert plugin.jobs == ["pause", "resume", "cancel"]
    assert await _commands(printer.id) == [("pause", "alexa", "done"), ("resume", "alexa", "done"),
                                           ("cancel", "alexa", "done")]


async def test_a_request_herald_cannot_read_is_answered_in_words_not_an_error(client, prusa):
    printer, key, plugin = prusa
    env = _intent("PauseIntent", "de-DE")
    env["request"]["intent"]["slots"] = "not slots"
    answer = await _alexa(client, env)  # 200, with speech
    assert _said(answer) == ph.for_locale("de-DE").control_failed()
    assert plugin.jobs == []
