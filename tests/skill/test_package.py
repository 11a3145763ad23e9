"""The skill package's PRINTER_NAME values: what Alexa accepts at Build Model, and still matched."""

from __future__ import annotations

import io
import json
import unicodedata
import zipfile

import pytest

import skill
from skill import LOCALES
from skill.handlers import match_printer
from skill.package import build_package, interaction_model, printer_slot_values
from tests.support.alexa import envelope, printer_in, speech

NAMES = [
    "Voron 2.4 🚀",
    "<b>Bold</b><script>alert(1)</script>",
    "Ender & Co",
    "Prusa-MK4",
    "Drucker Küche",
    "Bob’s printer",
    "❤️ Heart",
    "   ",
    "🚀🔥",
    "voron 2.4",  # the same spoken value as the first: one value
    "  Mini   Lab  ",
]


def _allowed(ch: str) -> bool:
    """Amazon's rule for custom slot values: letters, digits, spaces, and periods,
    apostrophes and hyphens as punctuation."""
    category = unicodedata.category(ch)
    return category[0] == "L" or category in ("Nd", "Mn", "Mc") or ch in " .'-"


def _all_spoken(values):
    for value in values:
        yield value["name"]["value"]
        yield from value["name"].get("synonyms", [])


@pytest.mark.parametrize("locale", LOCALES)
def test_slot_values_hold_only_what_alexa_accepts(locale):
    values = printer_slot_values(NAMES, locale)
    spoken = list(_all_spoken(values))
    for text in spoken:
        assert text and all(_allowed(ch) for ch in text), text
        assert text == " ".join(text.split()), text  # no doubled, leading or trailing spaces
        assert any(ch.isalnum() for ch in text.split()[0]) and any(ch.isalnum() for ch in text.split()[-1])
    # Unique across values and synonyms, ignoring case, as a slot type must be.
    assert len({text.casefold() for text in spoken}) == len(spoken), spoken
    by_value = {v["name"]["value"]: v["name"].get("synonyms", []) for v in values}
    assert list(by_value) == ["Voron 2.4", "b Bold b script alert 1 script", "Ender Co", "Prusa-MK4",
                              "Drucker Küche", "Bob's printer", "Heart", "Mini Lab"]
    four = {"en": "four", "de": "vier"}[locale[:2]]
    assert by_value["Prusa-MK4"] == ["Prusa MK4", f"Prusa MK {four}"]
    assert by_value["Voron 2.4"] == [{"en": "Voron two point four", "de": "Voron zwei komma vier"}[locale[:2]]]
    assert by_value["Ender Co"] == [{"en": "Ender and Co", "de": "Ender und Co"}[locale[:2]]]


@pytest.mark.parametrize("locale", LOCALES)
def test_every_value_and_synonym_finds_its_printer(locale):
    printers = [{"name": name} for name in NAMES if name.strip() and name != "voron 2.4"]
    for value in printer_slot_values([p["name"] for p in printers], locale):
        owner = next(p for p in printers
                     if printer_slot_values([p["name"]], locale)[0:1] == [value])
        for text in [value["name"]["value"], *value["name"].get("synonyms", [])]:
            assert match_printer(text, printers) is owner, (text, owner)


@pytest.mark.parametrize("locale", LOCALES)
def test_an_owners_spoken_name_is_a_synonym_that_resolves_to_the_printer(locale):
    values = printer_slot_values([("MK4-01", "the big one"), ("Voron 2.4 🚀", None), ("Ender", "Voron 2.4")],
                                 locale)
    by_value = {v["name"]["value"]: v["name"].get("synonyms", []) for v in values}
    assert "the big one" in by_value["MK4-01"]
    assert "Voron 2.4" not in by_value["Ender"]  # taken by a printer's own name: values stay unique
    printers = [{"name": "MK4-01", "spoken_name": "the big one"}, {"name": "Voron 2.4 🚀"}]
    assert match_printer("MK4-01", printers) is printers[0]  # the resolved value names the printer


def test_spoken_names_match_the_real_names():
    printers = [{"name": "Voron 2.4 🚀"}, {"name": "Drucker Küche"}, {"name": "Prusa MK4"}]
    assert match_printer("voron 2.4", printers)["name"] == "Voron 2.4 🚀"
    assert match_printer("Voron 2.4", printers)["name"] == "Voron 2.4 🚀"
    assert match_printer("drucker küche", printers)["name"] == "Drucker Küche"
    assert match_printer("drucker kuche", printers)["name"] == "Drucker Küche"
    assert match_printer("prusa mk4", printers)["name"] == "Prusa MK4"


def test_alexa_hearing_the_sanitised_name_answers_for_the_real_printer():
    printer = printer_in("idle", name="Voron 2.4 🚀")
    env = envelope(intent="PrinterStatusIntent", printer="voron 2.4")
    response = skill.invoke(env, skill.StaticSource([printer, printer_in("idle", name="Prusa MK4")],
                                                     "Europe/Berlin", None))
    assert "Voron 2.4" in speech(response) and "Prusa" not in speech(response)


def test_names_alexa_cannot_take_leave_the_placeholder():
    model = interaction_model("en-US", ["🚀", "  ", "<>"])
    [printer_type] = [t for t in model["interactionModel"]["languageModel"]["types"]
                      if t["name"] == "PRINTER_NAME"]
    assert printer_type["values"] == [{"name": {"value": "printer"}}]


def test_the_package_carries_the_sanitised_values():
    data = build_package("https://herald.example.net/alexa", {"type": "AUTH_CODE"}, NAMES)
    archive = zipfile.ZipFile(io.BytesIO(data))
    for locale in LOCALES:
        model = json.loads(archive.read(f"skill-package/interactionModels/custom/{locale}.json"))
        [printer_type] = [t for t in model["interactionModel"]["languageModel"]["types"]
                          if t["name"] == "PRINTER_NAME"]
        assert printer_type["values"] == printer_slot_values(NAMES, locale)
        text = json.dumps(printer_type, ensure_ascii=False)
        assert "🚀" not in text and "<" not in text and "&" not in text


def test_docs_list_every_utterance():
    from pathlib import Path

    from skill.package import utterances_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alexa.md").read_text()
    assert utterances_markdown() in doc, "docs/alexa.md is out of date: run scripts/gen-alexa-doc"


@pytest.mark.parametrize("locale", LOCALES)
def test_only_cancelling_a_print_asks_for_alexas_confirmation(locale):
    model = interaction_model(locale, ["Prusa"])["interactionModel"]
    intents = {i["name"]: i for i in model["languageModel"]["intents"]}
    for name in ("PauseIntent", "ResumeIntent", "CancelPrintIntent"):
        assert [s["name"] for s in intents[name]["slots"]] == ["printer"] and intents[name]["samples"]
    assert model["dialog"]["delegationStrategy"] == "SKILL_RESPONSE"
    (dialog,) = model["dialog"]["intents"]
    assert dialog["name"] == "CancelPrintIntent" and dialog["confirmationRequired"] is True
    prompts = {p["id"]: p for p in model["prompts"]}
    (variation,) = prompts[dialog["prompts"]["confirmation"]]["variations"]
    assert variation["type"] == "PlainText" and variation["value"].endswith("?")
    assert ("abbrechen" in variation["value"]) is locale.startswith("de")
    # every sample is unique across intents, as Build Model requires
    samples = [s.lower() for i in intents.values() for s in i.get("samples") or []]
    assert len(samples) == len(set(samples))
