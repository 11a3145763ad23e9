"""Every intent, in en-US and de-DE, for a printer in every state: the words Alexa speaks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import skill
from skill import LOCALES
from skill.handlers import HANDLED_INTENTS, match_printer
from tests.support.alexa import NOW, STATES, apl_directives, envelope, printer_in, speech

ZONES = {"en-US": "America/New_York", "de-DE": "Europe/Berlin", "en-GB": "Europe/London"}

EXPECTED = {
    "en-US": {
        "never_seen": {
            "PrinterStatusIntent": 'Prusa has never checked in.',
            "ProgressIntent": 'Prusa has never checked in.',
            "TemperatureIntent": 'Prusa has never checked in.',
            "CurrentJobIntent": 'Prusa has never checked in.',
            "LastJobIntent": 'Prusa has never checked in.',
        },
        "offline": {
            "PrinterStatusIntent": 'Prusa is offline, last seen 2 hours ago.',
            "ProgressIntent": 'Prusa is offline, last seen 2 hours ago.',
            "TemperatureIntent": 'Prusa is offline, last seen 2 hours ago.',
            "CurrentJobIntent": 'Prusa is offline, last seen 2 hours ago.',
            "LastJobIntent": "Prusa's last print, cube, finished after 1 hour.",
        },
        "disconnected": {
            "PrinterStatusIntent": "Prusa's OctoPrint is running, but no printer is connected to it.",
            "ProgressIntent": "Prusa's OctoPrint is running, but no printer is connected to it.",
            "TemperatureIntent": 'Prusa reports no temperatures right now.',
            "CurrentJobIntent": "Prusa's OctoPrint is running, but no printer is connected to it.",
            "LastJobIntent": 'Prusa has no finished print yet.',
        },
        "idle": {
            "PrinterStatusIntent": 'Prusa is idle.',
            "ProgressIntent": 'Prusa is idle and not printing anything.',
            "TemperatureIntent": 'On Prusa, the nozzle is at 24 degrees Celsius with its heater off; the bed is at 24 degrees Celsius with its heater off.',
            "CurrentJobIntent": 'Prusa is idle and not printing anything.',
            "LastJobIntent": "Prusa's last print, cube, finished after 1 hour.",
        },
        "printing": {
            "PrinterStatusIntent": 'Prusa is printing Tom &amp; Jerry &lt;v2&gt;, 42 percent done, about 1 hour and 20 minutes left, finishing around 8:20 am.',
            "ProgressIntent": 'Prusa has printed 42 percent of Tom &amp; Jerry &lt;v2&gt;, about 1 hour and 20 minutes left, finishing around 8:20 am.',
            "TemperatureIntent": 'On Prusa, the nozzle is at its target of 210 degrees Celsius; the bed is at its target of 60 degrees Celsius.',
            "CurrentJobIntent": 'Prusa is printing Tom &amp; Jerry &lt;v2&gt;.',
            "LastJobIntent": "Prusa's last print, cube, finished after 1 hour.",
        },
        "paused": {
            "PrinterStatusIntent": 'Prusa is paused while printing benchy, at 61 percent.',
            "ProgressIntent": 'Prusa is paused at 61 percent of benchy.',
            "TemperatureIntent": 'On Prusa, the nozzle is at its target of 210 degrees Celsius; the bed is at its target of 60 degrees Celsius.',
            "CurrentJobIntent": 'Prusa has paused benchy.',
            "LastJobIntent": "Prusa's last print, cube, finished after 1 hour.",
        },
        "error": {
            "PrinterStatusIntent": 'Prusa reports an error: Thermal runaway.',
            "ProgressIntent": 'Prusa reports an error: Thermal runaway.',
            "TemperatureIntent": 'On Prusa, the nozzle is at its target of 210 degrees Celsius; the bed is at its target of 60 degrees Celsius.',
            "CurrentJobIntent": 'Prusa reports an error: Thermal runaway.',
            "LastJobIntent": "Prusa's last print, vase, failed after 1 hour and 30 minutes.",
        },
    },
    "de-DE": {
        "never_seen": {
            "PrinterStatusIntent": 'Prusa hat sich noch nie gemeldet.',
            "ProgressIntent": 'Prusa hat sich noch nie gemeldet.',
            "TemperatureIntent": 'Prusa hat sich noch nie gemeldet.',
            "CurrentJobIntent": 'Prusa hat sich noch nie gemeldet.',
            "LastJobIntent": 'Prusa hat sich noch nie gemeldet.',
        },
        "offline": {
            "PrinterStatusIntent": 'Prusa ist offline, zuletzt gesehen vor 2 Stunden.',
            "ProgressIntent": 'Prusa ist offline, zuletzt gesehen vor 2 Stunden.',
            "TemperatureIntent": 'Prusa ist offline, zuletzt gesehen vor 2 Stunden.',
            "CurrentJobIntent": 'Prusa ist offline, zuletzt gesehen vor 2 Stunden.',
            "LastJobIntent": 'Der letzte Druck von Prusa, cube, wurde nach einer Stunde fertig.',
        },
        "disconnected": {
            "PrinterStatusIntent": 'Das OctoPrint von Prusa läuft, aber es ist kein Drucker verbunden.',
            "ProgressIntent": 'Das OctoPrint von Prusa läuft, aber es ist kein Drucker verbunden.',
            "TemperatureIntent": 'Prusa meldet gerade keine Temperaturen.',
            "CurrentJobIntent": 'Das OctoPrint von Prusa läuft, aber es ist kein Drucker verbunden.',
            "LastJobIntent": 'Prusa hat noch keinen Druck abgeschlossen.',
        },
        "idle": {
            "PrinterStatusIntent": 'Prusa ist bereit und druckt gerade nicht.',
            "ProgressIntent": 'Prusa ist bereit und druckt gerade nicht.',
            "TemperatureIntent": 'Bei Prusa: die Düse hat 24 Grad Celsius, die Heizung ist aus; das Bett hat 24 Grad Celsius, die Heizung ist aus.',
            "CurrentJobIntent": 'Prusa ist bereit und druckt gerade nicht.',
            "LastJobIntent": 'Der letzte Druck von Prusa, cube, wurde nach einer Stunde fertig.',
        },
        "printing": {
            "PrinterStatusIntent": 'Prusa druckt Tom &amp; Jerry &lt;v2&gt;, 42 Prozent fertig, noch etwa eine Stunde und 20 Minuten, fertig etwa um 14:20 Uhr.',
            "ProgressIntent": 'Prusa hat 42 Prozent von Tom &amp; Jerry &lt;v2&gt; gedruckt, noch etwa eine Stunde und 20 Minuten, fertig etwa um 14:20 Uhr.',
            "TemperatureIntent": 'Bei Prusa: die Düse hat die Zieltemperatur von 210 Grad Celsius; das Bett hat die Zieltemperatur von 60 Grad Celsius.',
            "CurrentJobIntent": 'Prusa druckt Tom &amp; Jerry &lt;v2&gt;.',
            "LastJobIntent": 'Der letzte Druck von Prusa, cube, wurde nach einer Stunde fertig.',
        },
        "paused": {
            "PrinterStatusIntent": 'Prusa hat den Druck von benchy pausiert, bei 61 Prozent.',
            "ProgressIntent": 'Prusa ist bei 61 Prozent von benchy pausiert.',
            "TemperatureIntent": 'Bei Prusa: die Düse hat die Zieltemperatur von 210 Grad Celsius; das Bett hat die Zieltemperatur von 60 Grad Celsius.',
            "CurrentJobIntent": 'Prusa hat benchy pausiert.',
            "LastJobIntent": 'Der letzte Druck von Prusa, cube, wurde nach einer Stunde fertig.',
        },
        "error": {
            "PrinterStatusIntent": 'Prusa meldet einen Fehler: Thermal runaway.',
            "ProgressIntent": 'Prusa meldet einen Fehler: Thermal runaway.',
            "TemperatureIntent": 'Bei Prusa: die Düse hat die Zieltemperatur von 210 Grad Celsius; das Bett hat die Zieltemperatur von 60 Grad Celsius.',
            "CurrentJobIntent": 'Prusa meldet einen Fehler: Thermal runaway.',
            "LastJobIntent": 'Der letzte Druck von Prusa, vase, ist nach einer Stunde und 30 Minuten fehlgeschlagen.',
        },
    },
}
# en-GB says the same as en-US, with the 24-hour clock.
EXPECTED["en-GB"] = {state: {intent: text.replace("8:20 am", "13:20") for intent, text in answers.items()}
                     for state, answers in EXPECTED["en-US"].items()}


def _ask(intent=None, *, locale="en-US", printers=None, request_type="IntentRequest", screen=False,
         printer=None, linked=True, session_attributes=None, now=NOW):
    source = skill.StaticSource(printers if printers is not None else [], ZONES[locale], now) if linked else None
    env = envelope(request_type=request_type, intent=intent, locale=locale, screen=screen, printer=printer,
                   session_attributes=session_attributes)
    return skill.invoke(env, source)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("intent", ["PrinterStatusIntent", "ProgressIntent", "TemperatureIntent",
                                    "CurrentJobIntent", "LastJobIntent"])
def test_each_printer_intent_in_each_state(intent, state, locale):
    response = _ask(intent, locale=locale, printers=[printer_in(state)])
    assert speech(response) == EXPECTED[locale][state][intent]
    assert response["response"]["shouldEndSession"] is True


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("state", STATES)
def test_the_printer_is_found_by_a_near_match_of_its_name(state, locale):
    printers = [printer_in(state, "Prusa Mini"), printer_in("idle", "Ender Three")]
    response = _ask("PrinterStatusIntent", locale=locale, printers=printers, printer="prusa mini's")
    assert speech(response) == EXPECTED[locale][state]["PrinterStatusIntent"].replace("Prusa", "Prusa Mini", 1)


def test_file_names_are_escaped_for_ssml():
    response = _ask("CurrentJobIntent", printers=[printer_in("printing", "R&D <lab>")])
    assert speech(response) == "R&amp;D &lt;lab&gt; is printing Tom &amp; Jerry &lt;v2&gt;."


@pytest.mark.parametrize("locale, expected", [
    ("en-US", "You have 3 printers. Prusa is printing Tom &amp; Jerry &lt;v2&gt;, 42 percent done, about "
              "1 hour and 20 minutes left. Ender is idle. Voron is offline, last seen 2 hours ago."),
    ("de-DE", "Du hast 3 Drucker. Prusa druckt Tom &amp; Jerry &lt;v2&gt;, 42 Prozent fertig, noch etwa "
              "eine Stunde und 20 Minuten. Ender ist bereit und druckt gerade nicht. Voron ist offline, "
              "zuletzt gesehen vor 2 Stunden."),
])
def test_launch_summarises_every_printer_in_one_breath(locale, expected):
    printers = [printer_in("printing", "Prusa"), printer_in("idle", "Ender"), printer_in("offline", "Voron")]
    response = _ask(request_type="LaunchRequest", locale=locale, printers=printers)
    assert speech(response) == expected


@pytest.mark.parametrize("locale, one, three, none", [
    ("en-US", "You have one printer: Prusa.", "You have 3 printers: Prusa, Ender and Voron.",
     "You have no printers in Herald yet. Add one on your Herald web page."),
    ("de-DE", "Du hast einen Drucker: Prusa.", "Du hast 3 Drucker: Prusa, Ender und Voron.",
     "Du hast noch keine Drucker in Herald. Füge einen auf deiner Herald-Webseite hinzu."),
])
def test_list_printers_with_plurals(locale, one, three, none):
    assert speech(_ask("ListPrintersIntent", locale=locale, printers=[printer_in("idle")])) == one
    names = [printer_in("idle", n) for n in ("Prusa", "Ender", "Voron")]
    assert speech(_ask("ListPrintersIntent", locale=locale, printers=names)) == three
    assert speech(_ask("ListPrintersIntent", locale=locale, printers=[])) == none


@pytest.mark.parametrize("locale, expected", [
    ("en-US", "Prusa has printed 42 percent of Tom &amp; Jerry &lt;v2&gt;, about 1 hour and 20 minutes left, "
              "finishing around 8:20 am."),
    ("en-GB", "Prusa has printed 42 percent of Tom &amp; Jerry &lt;v2&gt;, about 1 hour and 20 minutes left, "
              "finishing around 13:20."),
    ("de-DE", "Prusa hat 42 Prozent von Tom &amp; Jerry &lt;v2&gt; gedruckt, noch etwa eine Stunde und 20 Minuten, "
              "fertig etwa um 14:20 Uhr."),
])
def test_time_left_allows_for_the_time_since_the_check_in_in_the_users_zone(locale, expected):
    # print_time_left was 4860 s at the check-in a minute ago: 4800 s = 1 h 20 min are left now
    assert speech(_ask("ProgressIntent", locale=locale, printers=[printer_in("printing")])) == expected


def test_a_finish_after_midnight_says_tomorrow_and_singular_units():
    printer = printer_in("printing")
    printer["status"]["job"]["print_time_left"] = 60 + 3600 + 60  # 1 hour 1 minute after the check-in
    late = NOW.replace(hour=4, minute=30)  # 23:30 in New York
    printer["last_seen"] = (late - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = _ask("ProgressIntent", printers=[printer], now=late)
    assert speech(response).endswith("about 1 hour and 1 minute left, finishing around tomorrow at 12:31 am.")


def test_several_printers_ask_which_one_and_the_answer_continues_the_question():
    printers = [printer_in("printing", "Prusa"), printer_in("idle", "Ender")]
    first = _ask("LastJobIntent", printers=[printer_in("printing", "Prusa"), printer_in("idle", "Ender")])
    assert speech(first) == "Which printer: Prusa or Ender?"
    first = _ask("TemperatureIntent", printers=[printer_in("idle", "Prusa"), printer_in("idle", "Ender")])
    assert speech(first) == "Which printer: Prusa or Ender?"
    assert first["response"]["shouldEndSession"] is False
    attributes = first["sessionAttributes"]
    second = _ask("PrinterStatusIntent", printers=printers, printer="ender", session_attributes=attributes)
    assert speech(second) == ("On Ender, the nozzle is at 24 degrees Celsius with its heater off; "
                              "the bed is at 24 degrees Celsius with its heater off.")


def test_unknown_printer_name_lists_the_printers():
    printers = [printer_in("idle", "Prusa"), printer_in("idle", "Ender")]
    response = _ask("PrinterStatusIntent", printers=printers, printer="toaster")
    assert speech(response) == "I couldn't find a printer called toaster. Your printers are Prusa and Ender. Which one?"


def test_progress_without_a_name_answers_for_the_printing_ones():
    printers = [printer_in("idle", "Ender"), printer_in("paused", "Voron")]
    assert speech(_ask("ProgressIntent", printers=printers)) == "Voron is paused at 61 percent of benchy."
    idle = [printer_in("idle", "Ender"), printer_in("offline", "Voron")]
    assert speech(_ask("ProgressIntent", printers=idle)) == "None of your printers is printing right now."


@pytest.mark.parametrize("locale", ["en-US", "de-DE"])
def test_apl_visual_only_on_devices_with_a_screen(locale):
    printers = [printer_in("printing")]
    with_screen = _ask("PrinterStatusIntent", locale=locale, printers=printers, screen=True)
    (directive,) = apl_directives(with_screen)
    item = directive["datasources"]["herald"]["printers"][0]
    assert item["name"] == "Prusa"
    assert item["progress"] == 42
    assert item["timeLeft"] in ("about 1 hour and 20 minutes left", "noch etwa eine Stunde und 20 Minuten")
    assert item["temperatures"] == "210 °C / 210 °C · 60 °C / 60 °C"
    assert "Tom & Jerry <v2>" in item["state"]  # plain text on screen, not SSML entities
    without = _ask("PrinterStatusIntent", locale=locale, printers=printers, screen=False)
    assert apl_directives(without) == []
    assert speech(without) == speech(with_screen)


@pytest.mark.parametrize("locale, help_start, bye, fallback_start", [
    ("en-US", "You can ask for the status of your printers", "Goodbye.", "Herald can't help with that."),
    ("de-DE", "Du kannst nach dem Status deiner Drucker fragen", "Tschüss.", "Dabei kann Herald nicht helfen."),
])
def test_help_stop_cancel_fallback_and_session_end(locale, help_start, bye, fallback_start):
    printers = [printer_in("idle")]
    help_response = _ask("AMAZON.HelpIntent", locale=locale, printers=printers)
    assert speech(help_response).startswith(help_start)
    assert help_response["response"]["shouldEndSession"] is False
    for intent in ("AMAZON.StopIntent", "AMAZON.CancelIntent"):
        response = _ask(intent, locale=locale, printers=printers)
        assert speech(response) == bye
        assert response["response"]["shouldEndSession"] is True
    fallback = _ask("AMAZON.FallbackIntent", locale=locale, printers=printers)
    assert speech(fallback).startswith(fallback_start)
    assert fallback["response"]["shouldEndSession"] is False
    home = _ask("AMAZON.NavigateHomeIntent", locale=locale, printers=printers, screen=True)
    assert "outputSpeech" not in home["response"] and apl_directives(home) == []
    assert home["response"]["shouldEndSession"] is True
    ended = _ask(request_type="SessionEndedRequest", locale=locale, printers=printers)
    assert "outputSpeech" not in ended["response"]


@pytest.mark.parametrize("locale, start", [("en-US", "To hear about your printers, link your Herald account"),
                                           ("de-DE", "Um von deinen Druckern zu hören, verknüpfe")])
def test_without_a_linked_account_the_skill_asks_to_link_with_a_card(locale, start):
    for intent in ("PrinterStatusIntent", "ListPrintersIntent"):
        response = _ask(intent, locale=locale, linked=False)
        assert speech(response).startswith(start)
        assert response["response"]["card"]["type"] == "LinkAccount"
    launch = _ask(request_type="LaunchRequest", locale=locale, linked=False)
    assert launch["response"]["card"]["type"] == "LinkAccount"


def test_match_printer_prefers_exact_then_near():
    printers = [{"name": "Prusa MK4"}, {"name": "Prusa Mini"}, {"name": "Ender 3"}]
    assert match_printer("prusa mini", printers)["name"] == "Prusa Mini"
    assert match_printer("ender", printers)["name"] == "Ender 3"
    assert match_printer("prusa mk four", printers)["name"] == "Prusa MK4"
    assert match_printer("laser cutter", printers) is None


def test_handled_intents_cover_the_issue():
    assert {"PrinterStatusIntent", "ProgressIntent", "TemperatureIntent", "CurrentJobIntent", "LastJobIntent",
            "ListPrintersIntent", "AMAZON.HelpIntent", "AMAZON.StopIntent", "AMAZON.CancelIntent",
            "AMAZON.FallbackIntent"} <= HANDLED_INTENTS


@pytest.mark.parametrize("locale, status, listing", [
    ("en-US", "Voron 2.4 is idle.", "You have 2 printers: Voron 2.4 and 🚀."),
    ("de-DE", "Voron 2.4 ist bereit und druckt gerade nicht.", None),
])
def test_emoji_in_a_name_are_not_spoken_but_stay_on_the_screen(locale, status, listing):
    voron = printer_in("idle", "Voron 2.4 🚀")
    answer = _ask("PrinterStatusIntent", locale=locale, printers=[voron], printer="voron 2.4", screen=True)
    assert speech(answer) == status
    assert "Voron 2.4 🚀" in json.dumps(apl_directives(answer), ensure_ascii=False)
    if listing:  # a name that is nothing but a symbol is said as written rather than not at all
        answer = _ask("ListPrintersIntent", locale=locale, printers=[voron, printer_in("idle", "🚀")])
        assert speech(answer) == listing
