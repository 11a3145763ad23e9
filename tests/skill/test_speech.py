"""Every phrase form in every locale, rendered and checked: well-formed SSML, a name a person
would say for each file, temperatures with their unit, and German cases right."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

import skill
from skill import LOCALES
from skill import phrases as ph
from skill.status import spoken_file
from tests.support.alexa import NOW, STATES, envelope, printer_in, speech

ZONE = ph.local_zone("Europe/Berlin")
FILES = [None, "benchy_0.2mm_PLA_MK3S_1h2m.gcode", "R&D <lab>.gcode", "cube.gcode"]
PROGRESS = [None, 0.0, 77.4]
REMAINING = [None, 10, 59, 3600, 3660, 7320]
TEMPS = [
    {},
    {"tool0": {"actual": 24.0, "target": 0}},
    {"tool0": {"actual": 150.0, "target": 215.0}, "bed": {"actual": 60.2, "target": 60.0}},
    {"tool0": {"actual": 230.0, "target": 200.0}, "tool1": {"actual": 199.0, "target": 200.0},
     "bed": {"actual": 22.0, "target": None}, "chamber": {"actual": 41.0, "target": 45.0}},
]
LAST = [None, {"file": None, "duration": 20, "result": "completed"},
        {"file": "vase_0.15mm_PETG_MK4_3h5m.bgcode", "duration": 3600, "result": "failed"},
        {"file": "gear.gcode", "duration": 7260, "result": "cancelled"},
        {"file": "clip.gcode", "duration": None, "result": None}]
METHODS = ("brief", "status", "progress", "temperatures", "current_job", "last_job")


def _variants():
    """Printers in every state, crossed with the job, temperature and last-print shapes."""
    for state in STATES:
        yield printer_in(state)
    for state, file, progress, left in itertools.product(("printing", "paused"), FILES, PROGRESS, REMAINING):
        printer = printer_in(state)
        printer["status"]["job"] = {"file": file, "progress": progress, "print_time_left": left}
        yield printer
    for temps, last in itertools.product(TEMPS, LAST):
        printer = printer_in("idle")
        printer["status"]["temperatures"] = temps
        printer["status"]["last_job"] = last
        yield printer
    for hours in (0, 1, 25):
        printer = printer_in("offline")
        printer["last_seen"] = (NOW - timedelta(hours=hours, seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        yield printer


BAD = {
    "en": [r"\ba file\b", r"\bof a\b", r"\bNone\b(?! of)", r"\.b?gcode", r"0\.2mm", r"\bMK3S\b", r"\b1h2m\b",
           r"\bdegrees?\b(?! Celsius)", r"\b1 (hours|minutes)\b", r"\b([02-9]|\d\d+) (hour|minute)\b"],
    "de": [r"\beine Datei\b", r"\bvon eine\b", r"\bnach (weniger als )?eine\b", r"\bvor (weniger als )?eine\b",
           r"\bNone\b(?! of)", r"\.b?gcode", r"0\.2mm", r"\bGrad\b(?! Celsius)", r"\b1 (Stunde|Minute)",
           r"\bpercent\b", r"\bdegrees\b"],
}


def _check(text: str, locale: str) -> None:
    ET.fromstring(f"<speak>{text}</speak>")  # well-formed: names and files are escaped
    assert text == text.strip() and "  " not in text and " ," not in text and " ." not in text, text
    assert text[-1] in ".?!", text
    for pattern in BAD[locale[:2]]:
        assert not re.search(pattern, text), (pattern, text)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_phrase_form_reads_well(locale):
    phrases = ph.for_locale(locale)
    printers = list(_variants())
    rendered = set()
    for printer, method in itertools.product(printers, METHODS):
        text = getattr(phrases, method)(printer, NOW, ZONE)
        _check(text, locale)
        rendered.add(text)
    for count in (0, 1, 3):
        group = [printer_in(s, n) for s, n in zip(("printing", "idle", "offline"), ("A & B", "C", "D"), strict=True)]
        for text in (phrases.summary(group[:count], NOW, ZONE), phrases.list_printers(group[:count])):
            _check(text, locale)
        if count:
            _check(phrases.which_printer(group[:count]), locale)
            _check(phrases.unknown_printer("toaster <3", group[:count]), locale)
    for text in (phrases.none_printing(), phrases.no_printers(), phrases.help(), phrases.reprompt(),
                 phrases.goodbye(), phrases.fallback(), phrases.link_account()):
        _check(text, locale)
    assert len(rendered) > 100  # the variants really differ


@pytest.mark.parametrize("locale, method, expected", [
    ("en-US", "progress", "Prusa's print is paused at 77 percent."),
    ("en-US", "brief", "Prusa is paused, at 77 percent."),
    ("en-US", "current_job", "Prusa has paused its print, and its file name is not shared."),
    ("en-GB", "progress", "Prusa's print is paused at 77 percent."),
    ("de-DE", "progress", "Prusa ist bei 77 Prozent pausiert."),
    ("de-DE", "brief", "Prusa hat den Druck pausiert, bei 77 Prozent."),
])
def test_a_paused_print_without_a_file_name(locale, method, expected):
    printer = printer_in("paused")
    printer["status"]["job"] = {"file": None, "progress": 77.4, "print_time_left": 600}
    assert getattr(ph.for_locale(locale), method)(printer, NOW, ZONE) == expected


@pytest.mark.parametrize("locale, duration, expected", [
    ("de-DE", 20, "Der letzte Druck von Prusa wurde nach weniger als einer Minute fertig."),
    ("de-DE", 3660, "Der letzte Druck von Prusa wurde nach einer Stunde und einer Minute fertig."),
    ("de-DE", 7320, "Der letzte Druck von Prusa wurde nach 2 Stunden und 2 Minuten fertig."),
    ("en-US", 20, "Prusa's last print finished after less than a minute."),
    ("en-GB", 3660, "Prusa's last print finished after 1 hour and 1 minute."),
])
def test_last_print_durations_in_the_right_case(locale, duration, expected):
    printer = printer_in("idle")
    printer["status"]["last_job"] = {"file": None, "duration": duration, "result": "completed"}
    assert ph.for_locale(locale).last_job(printer, NOW, ZONE) == expected


def test_german_time_left_and_last_seen():
    de = ph.for_locale("de-DE")
    assert de.left(3660) == "noch etwa eine Stunde und eine Minute"
    offline = printer_in("offline")
    offline["last_seen"] = (NOW - timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert de.brief(offline, NOW, ZONE) == "Prusa ist offline, zuletzt gesehen vor weniger als einer Minute."


@pytest.mark.parametrize("locale, expected", [
    ("en-US", "On Prusa, the nozzle is at 150 degrees Celsius, heating to 215 degrees Celsius; tool 2 is at "
              "its target of 200 degrees Celsius; the bed is at 22 degrees Celsius with its heater off; "
              "the chamber is at 30 degrees Celsius, cooling to 25 degrees Celsius."),
    ("de-DE", "Bei Prusa: die Düse hat 150 Grad Celsius und heizt auf 215 Grad Celsius; Werkzeug 2 hat die "
              "Zieltemperatur von 200 Grad Celsius; das Bett hat 22 Grad Celsius, die Heizung ist aus; "
              "die Kammer hat 30 Grad Celsius und kühlt auf 25 Grad Celsius ab."),
])
def test_temperatures_say_their_unit(locale, expected):
    printer = printer_in("idle")
    printer["status"]["temperatures"] = {"tool0": {"actual": 150, "target": 215},
                                         "tool1": {"actual": 199.6, "target": 200},
                                         "bed": {"actual": 22, "target": 0},
                                         "chamber": {"actual": 30, "target": 25}}
    text = ph.for_locale(locale).temperatures(printer, NOW, ZONE)
    assert text == expected.replace("the nozzle", "tool 1").replace("die Düse", "Werkzeug 1")


@pytest.mark.parametrize("raw, said", [
    ("benchy_0.2mm_PLA_MK3S_1h2m.gcode", "benchy"),
    ("benchy 0.2mm PLA MK3S 1h2m", "benchy"),
    ("prints/Benchy_v2.gcode", "Benchy v2"),
    ("CE3_cube_20x20x20.gcode", "cube"),
    ("Voron_Cube_0.4n_0.2mm_PETG_23m17s.gcode", "Voron Cube"),
    ("phone-stand_0.15mm_PLA_MK4_2h5m.bgcode", "phone stand"),
    ("cube.stl.gcode", "cube"),
    ("Tom & Jerry <v2>.gcode", "Tom & Jerry <v2>"),
    ("vase mode 2.gcode", "vase mode 2"),
    ("PLA_0.2mm.gcode", "PLA 0.2mm"),  # nothing but slicer words: said as written
    ("", None), (None, None),
])
def test_file_names_are_said_as_a_person_would(raw, said):
    assert spoken_file(raw) == said


def test_spoken_numbers_and_spoken_names_find_the_printer():
    voron = printer_in("idle", "Voron 2.4 🚀")
    ender = printer_in("printing", "Ender 3 V2")
    big = {**printer_in("idle", "MK4-01"), "spoken_name": "the big one"}
    printers = [voron, ender, big]
    for locale, asked, who in [("en-US", "voron two point four", "Voron 2.4"),
                               ("en-GB", "voron twenty four", "Voron 2.4"),
                               ("de-DE", "voron zwei komma vier", "Voron 2.4"),
                               ("en-US", "ender three v two", "Ender 3 V2"),
                               ("de-DE", "ender drei v zwei", "Ender 3 V2"),
                               ("en-US", "the big one", "the big one"),
                               ("de-DE", "the big one", "the big one")]:
        env = envelope(intent="CurrentJobIntent", locale=locale, printer=asked)
        answer = speech(skill.invoke(env, skill.StaticSource(printers, "UTC", NOW)))
        assert answer.startswith(who), (locale, asked, answer)
    listing = speech(skill.invoke(envelope(intent="ListPrintersIntent"), skill.StaticSource(printers, "UTC", NOW)))
    assert listing == "You have 3 printers: Voron 2.4, Ender 3 V2 and the big one."


@pytest.mark.parametrize("locale, temp, last", [
    ("en-US", "On Ender, the nozzle is at its target", "Prusa's last print, cube, finished"),
    ("en-GB", "On Ender, the nozzle is at its target", "Prusa's last print, cube, finished"),
    ("de-DE", "Bei Ender: die Düse hat die Zieltemperatur", "Der letzte Druck von Prusa, cube,"),
])
def test_unnamed_questions_answer_for_the_printer_meant(locale, temp, last):
    """With several printers, the temperature is the printing one's; the last print the one that has one."""
    ender, prusa = printer_in("printing", "Ender"), printer_in("idle", "Prusa")
    ender["status"]["last_job"] = None
    source = skill.StaticSource([ender, prusa], "UTC", NOW)
    assert speech(skill.invoke(envelope(intent="TemperatureIntent", locale=locale), source)).startswith(temp)
    assert speech(skill.invoke(envelope(intent="LastJobIntent", locale=locale), source)).startswith(last)


CONTROL_PHRASES = ("confirm_cancel", "control_off_at_printer", "control_off_in_herald", "control_unreachable",
                   "control_nothing", "control_already_paused", "control_not_paused", "control_refused")
CONTROL_SAID = {  # what each locale says when a command was sent (appliance/alexa/control.py)
    "en": {"pause": "Pausing the print on R&amp;D &lt;lab&gt;.", "resume": "Resuming the print on R&amp;D &lt;lab&gt;.",
           "cancel": "Cancelling the print on R&amp;D &lt;lab&gt;."},
    "de": {"pause": "Ich pausiere den Druck auf R&amp;D &lt;lab&gt;.",
           "resume": "Ich setze den Druck auf R&amp;D &lt;lab&gt; fort.",
           "cancel": "Ich breche den Druck auf R&amp;D &lt;lab&gt; ab."},
}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_control_phrase_reads_well_and_names_the_printer(locale):
    phrases = ph.for_locale(locale)
    printer = printer_in("printing", "R&D <lab>")
    aliased = {**printer_in("paused", "MK4-01"), "spoken_name": "the big one"}
    said = set()
    for action in ("pause", "resume", "cancel"):
        text = phrases.control_done(action, printer)
        _check(text, locale)
        assert text == CONTROL_SAID[locale[:2]][action]
        said.add(text)
    for method in CONTROL_PHRASES:
        for who, name in ((printer, "R&amp;D &lt;lab&gt;"), (aliased, "the big one")):
            text = getattr(phrases, method)(who)
            _check(text, locale)
            assert name in text, (method, text)
            said.add(text)
    for text in (phrases.cancel_denied(), phrases.control_failed()):
        _check(text, locale)
        said.add(text)
    assert len(said) == 3 + 2 * len(CONTROL_PHRASES) + 2  # no two situations sound alike
    english = ph.for_locale("en-US")
    if locale.startswith("de"):  # German throughout, not English left in
        assert phrases.cancel_denied() == "Gut, der Druck läuft weiter."
        for method in CONTROL_PHRASES:
            assert getattr(phrases, method)(printer) != getattr(english, method)(printer)
    else:
        assert phrases.cancel_denied() == "OK, the print goes on."
    assert "OctoPrint" in phrases.control_off_at_printer(printer)  # where to turn it on
    assert "Herald" in phrases.control_off_in_herald(printer)
