"""Herald's skill driven by a third-party simulator (bespoken's virtual-alexa) from Herald's own
interaction models: every sample utterance of every locale reaches its intent, with and without
a printer name (names said with numbers as words, and owners' spoken names), and a conversation
per locale covers every intent."""

from __future__ import annotations

import json
import re

import pytest

import skill
from skill import LOCALES
from skill.handlers import APPLIANCE_INTENTS
from skill.package import interaction_model
from tests.support.alexa import NOW, SKILL_ID, printer_in
from tests.support.simulator import SkillServer, drive, said

ZONES = {"en-US": "America/New_York", "en-GB": "Europe/London", "de-DE": "Europe/Berlin"}
ALIAS = {"en": "the big one", "de": "Küchendrucker"}
VORON_SAID = {"en": "voron two point four", "de": "voron zwei komma vier"}


def _printers(locale):
    voron = printer_in("printing", "Voron 2.4 🚀")
    voron["status"]["job"]["file"] = "benchy_0.2mm_PLA_MK3S_1h2m.gcode"
    mk4 = {**printer_in("idle", "MK4-01"), "spoken_name": ALIAS[locale[:2]]}
    return [voron, mk4]


def _model(tmp_path, locale, printers):
    path = tmp_path / f"{locale}.json"
    model = interaction_model(locale, [(p["name"], p.get("spoken_name")) for p in printers])
    path.write_text(json.dumps(model, ensure_ascii=False), encoding="utf-8")
    return path, model


# virtual-alexa reads any utterance holding one of these words as "open the skill" unless
# it comes as "ask herald to ...", as people say it.
_LAUNCH_WORDS = re.compile(r"(ask|open|launch|talk to|tell)", re.IGNORECASE)


def _spoken(locale, utterance):
    return f"ask herald to {utterance}" if locale.startswith("en") else utterance


@pytest.mark.parametrize("locale", LOCALES)
async def test_every_sample_utterance_reaches_its_intent(locale, tmp_path):
    printers = _printers(locale)
    path, model = _model(tmp_path, locale, printers)
    forms = [(VORON_SAID[locale[:2]], "Voron 2.4 🚀", "Voron 2.4"),
             (ALIAS[locale[:2]], "MK4-01", ALIAS[locale[:2]])]
    cases = []
    for intent in model["interactionModel"]["languageModel"]["intents"]:
        for number, sample in enumerate(intent["samples"]):
            heard, printer, called = forms[number % 2]
            utterance = sample.replace("{printer}", heard)
            assert locale.startswith("en") or not _LAUNCH_WORDS.search(utterance), utterance
            cases.append((intent["name"], sample, utterance, "{printer}" in sample, printer, called))
    assert len(cases) > 150
    async with SkillServer(lambda: skill.StaticSource(printers, ZONES[locale], NOW)) as server:
        results = await drive(model=path, locale=locale, url=server.url, application_id=SKILL_ID,
                              turns=[_spoken(locale, c[2]) for c in cases])
    for (intent, sample, utterance, named, printer, called), result in zip(cases, results, strict=True):
        assert "error" not in result, (sample, result)
        sent = result["request"]["request"]["intent"]
        assert sent["name"] == intent, (locale, sample, sent["name"])
        slot = (sent.get("slots") or {}).get("printer") or {}
        speech = said(result)
        assert speech, (sample, result)
        if named:
            assert slot.get("value", "").lower() == utterance_slot(sample, utterance), (sample, slot)
            (authority,) = slot["resolutions"]["resolutionsPerAuthority"]
            assert authority["status"]["code"] == "ER_SUCCESS_MATCH", (sample, slot)
            assert authority["values"][0]["value"]["name"] == printer.replace(" 🚀", "")
            # The appliance answers RemindWhenDoneIntent (it calls the Reminders API) and the control
            # intents (they act over the relay): here only that they resolve, with their printer;
            # tests/appliance/alexa/test_alexa_reminders.py and test_alexa_control.py answer them
            if intent not in APPLIANCE_INTENTS and (intent != "PrinterStatusIntent" or sample not in ("{printer}",)):
                assert called in speech, (sample, speech)
        else:
            assert "value" not in slot, (sample, slot)


def utterance_slot(sample: str, utterance: str) -> str:
    """What the slot caught: the utterance minus the sample's words around {printer}."""
    before, after = sample.split("{printer}")
    return utterance[len(before):len(utterance) - len(after)].strip().lower()


# One conversation per locale covering every intent: (what the user says, what Alexa answers).
# None means Alexa says nothing.
CONVERSATIONS = {
    "en-US": [
        ("open herald", "You have 2 printers. Voron 2.4 is printing benchy, 42 percent done, about 1 hour and "
                        "20 minutes left. the big one is idle."),
        ("ask herald to how long is left", "Voron 2.4 has printed 42 percent of benchy, about 1 hour and 20 "
                                           "minutes left, finishing around 8:20 am."),
        ("ask herald to what's the temperature", "On Voron 2.4, the nozzle is at its target of 210 degrees "
                                                 "Celsius; the bed is at its target of 60 degrees Celsius."),
        ("ask herald to what's the temperature of the big one", "On the big one, the nozzle is at 24 degrees "
                                                                "Celsius with its heater off; the bed is at 24 "
                                                                "degrees Celsius with its heater off."),
        ("ask herald to what's printing", "Voron 2.4 is printing benchy."),
        ("ask herald to how did the last print go", "Which printer: Voron 2.4 or the big one?"),
        ("the big one", "the big one's last print, cube, finished after 1 hour."),
        ("ask herald to what's the status of voron two point four",
         "Voron 2.4 is printing benchy, 42 percent done, about 1 hour and 20 minutes left, "
         "finishing around 8:20 am."),
        ("ask herald to which printers do I have", "You have 2 printers: Voron 2.4 and the big one."),
        ("help", "You can ask for the status of your printers, how long a print has left, the temperatures, "
                 "what is printing, how the last print went, or which printers you have. "
                 "You can also say: tell me when my print is done, or: pause, resume or cancel the print. "
                 "What would you like to know?"),
        ("intent:AMAZON.FallbackIntent", "Herald can't help with that. Try asking for the status of your "
                                         "printer, or how long a print has left."),
        ("intent:AMAZON.NavigateHomeIntent", None),
        ("intent:AMAZON.CancelIntent", "Goodbye."),
        ("stop", "Goodbye."),
        ("exit", None),
    ],
    "de-DE": [
        ("intent:LaunchRequest", "Du hast 2 Drucker. Voron 2.4 druckt benchy, 42 Prozent fertig, noch etwa eine "
                                 "Stunde und 20 Minuten. Küchendrucker ist bereit und druckt gerade nicht."),
        ("wie lange noch", "Voron 2.4 hat 42 Prozent von benchy gedruckt, noch etwa eine Stunde und 20 Minuten, "
                           "fertig etwa um 14:20 Uhr."),
        ("wie ist die temperatur", "Bei Voron 2.4: die Düse hat die Zieltemperatur von 210 Grad Celsius; das "
                                   "Bett hat die Zieltemperatur von 60 Grad Celsius."),
        ("wie heiß ist küchendrucker", "Bei Küchendrucker: die Düse hat 24 Grad Celsius, die Heizung ist aus; "
                                       "das Bett hat 24 Grad Celsius, die Heizung ist aus."),
        ("was wird gerade gedruckt", "Voron 2.4 druckt benchy."),
        ("wie lief der letzte druck", "Welcher Drucker: Voron 2.4 oder Küchendrucker?"),
        ("küchendrucker", "Der letzte Druck von Küchendrucker, cube, wurde nach einer Stunde fertig."),
        ("was ist der status von voron zwei komma vier",
         "Voron 2.4 druckt benchy, 42 Prozent fertig, noch etwa eine Stunde und 20 Minuten, "
         "fertig etwa um 14:20 Uhr."),
        ("welche drucker habe ich", "Du hast 2 Drucker: Voron 2.4 und Küchendrucker."),
        ("intent:AMAZON.HelpIntent", "Du kannst nach dem Status deiner Drucker fragen, wie lange ein Druck noch "
                                     "dauert, nach den Temperaturen, was gerade gedruckt wird, wie der letzte "
                                     "Druck lief oder welche Drucker du hast. Du kannst auch sagen: sag mir, wenn mein "
                                     "Druck fertig ist, oder: pausiere den Druck, setze den Druck fort, brich den "
                                     "Druck ab. Was möchtest du wissen?"),
        ("intent:AMAZON.FallbackIntent", "Dabei kann Herald nicht helfen. Frag zum Beispiel nach dem Status "
                                         "deines Druckers oder wie lange ein Druck noch dauert."),
        ("intent:AMAZON.NavigateHomeIntent", None),
        ("intent:AMAZON.CancelIntent", "Tschüss."),
        ("intent:AMAZON.StopIntent", "Tschüss."),
        ("exit", None),
    ],
}
CONVERSATIONS["en-GB"] = [(turn, answer and answer.replace("8:20 am", "13:20"))
                          for turn, answer in CONVERSATIONS["en-US"]]


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_conversation_covering_every_intent(locale, tmp_path):
    printers = _printers(locale)
    path, model = _model(tmp_path, locale, printers)
    turns = ["launch" if turn == "intent:LaunchRequest" else turn for turn, _ in CONVERSATIONS[locale]]
    async with SkillServer(lambda: skill.StaticSource(printers, ZONES[locale], NOW)) as server:
        results = await drive(model=path, locale=locale, url=server.url, application_id=SKILL_ID, turns=turns)
        requests = server.requests
    assert [said(r) for r in results] == [answer for _, answer in CONVERSATIONS[locale]]
    reached = {r["request"]["request"].get("intent", {}).get("name") or r["request"]["request"]["type"]
               for r in results}
    intents = {i["name"] for i in model["interactionModel"]["languageModel"]["intents"]} - set(APPLIANCE_INTENTS)
    assert intents | {"LaunchRequest", "SessionEndedRequest"} <= reached
    assert len(requests) == len(turns) and all(r["request"]["locale"] == locale for r in requests)
