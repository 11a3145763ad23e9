"""The skill package (ASK CLI layout) with a user's endpoint and printer names filled in."""

from __future__ import annotations

import io
import json
import re
import unicodedata
import zipfile
from importlib import resources
from typing import Any

from skill import LOCALES


def manifest(endpoint: str) -> dict[str, Any]:
    text = resources.files("skill").joinpath("skill.json").read_text()
    return json.loads(text.replace("{{ENDPOINT}}", endpoint))


# The word people say for "&", per language; "Ender & Co" is heard as "ender and co".
_AND_WORD = {"en": "and", "de": "und"}
# Punctuation Alexa accepts in a slot value: periods (abbreviations, "2.4"), apostrophes
# (possessives) and hyphens. Everything else but letters, digits and spaces is refused at
# Build Model, so it becomes a space.
_KEPT_PUNCTUATION = ".'-"


def _allowed(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category in ("Mn", "Mc"):  # accents that NFKC could not compose; not emoji variation selectors
        return not ("\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef")
    return category[0] == "L" or category == "Nd" or ch in _KEPT_PUNCTUATION


def _slot_text(text: str) -> str:
    """Letters, digits, spaces, periods, apostrophes and hyphens only; words without a
    letter or digit dropped; spaces collapsed. "Voron 2.4 🚀" -> "Voron 2.4"."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'")
    kept = "".join(ch if _allowed(ch) else " " for ch in text)
    words = (word.strip("-'").lstrip(".") for word in kept.split())
    return " ".join(word for word in words if any(ch.isalnum() for ch in word))


# Numbers said as words, so Alexa's model learns "voron two point four" for "Voron 2.4".
_NUMBER_WORDS = {
    "en": ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
           "fifteen sixteen seventeen eighteen nineteen").split(),
    "de": ("null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn "
           "fünfzehn sechzehn siebzehn achtzehn neunzehn").split(),
}
_TENS_WORDS = {
    "en": "twenty thirty forty fifty sixty seventy eighty ninety".split(),
    "de": "zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split(),
}
_POINT_WORD = {"en": "point", "de": "komma"}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _number_words(number: str, language: str) -> str:
    whole, _, decimals = number.partition(".")
    units, tens = _NUMBER_WORDS[language], _TENS_WORDS[language]
    value = int(whole)
    if value < 20:
        said = units[value]
    elif value < 100:
        ten, unit = divmod(value, 10)
        if not unit:
            said = tens[ten - 2]
        elif language == "de":
            said = ("ein" if unit == 1 else units[unit]) + "und" + tens[ten - 2]
        else:
            said = f"{tens[ten - 2]} {units[unit]}"
    else:
        said = " ".join(units[int(digit)] for digit in whole)
    if decimals:
        said += f" {_POINT_WORD[language]} " + " ".join(units[int(digit)] for digit in decimals)
    return said


def _said_with_words(text: str, language: str) -> str | None:
    """"Voron 2.4" -> "Voron two point four"; None when the text has no number or the
    language has no number words here."""
    if language not in _NUMBER_WORDS or not _NUMBER.search(text):
        return None
    return _NUMBER.sub(lambda match: f" {_number_words(match.group(), language)} ", text)


def printer_slot_values(printers: list[str] | list[tuple[str, str | None]], locale: str) -> list[dict[str, Any]]:
    """PRINTER_NAME values Alexa accepts, one per distinct printer name, with synonyms for
    how a name is said ("&" as a word, hyphens as spaces, numbers as words) and the spoken
    name its owner gave it. Each item is a name or a (name, spoken name) pair. Values and
    synonyms are unique (ignoring case) across the whole slot type, as Alexa requires; a
    resolved synonym comes back as its value, the printer's name."""
    language = locale.split("-")[0]
    and_word = _AND_WORD.get(language)
    used: set[str] = set()
    values = []
    for item in printers:
        name, alias = (item, None) if isinstance(item, str) else item
        value = _slot_text(name.replace("&", " "))
        if not value or value.casefold() in used:
            continue
        used.add(value.casefold())
        said = []
        if and_word and "&" in name:
            said.append(_slot_text(name.replace("&", f" {and_word} ")))
        if "-" in value:
            said.append(_slot_text(value.replace("-", " ")))
        said.append(_said_with_words(value.replace("-", " "), language) or "")
        if alias:
            alias_text = _slot_text(alias.replace("&", f" {and_word or ' '} "))
            said += [alias_text, _said_with_words(alias_text, language) or ""]
        synonyms = []
        for synonym in (_slot_text(text) for text in said):
            if synonym and synonym.casefold() not in used:
                used.add(synonym.casefold())
                synonyms.append(synonym)
        entry: dict[str, Any] = {"value": value}
        if synonyms:
            entry["synonyms"] = synonyms
        values.append({"name": entry})
    return values


def interaction_model(locale: str, printer_names: list[str] | list[tuple[str, str | None]] | None = None
                      ) -> dict[str, Any]:
    model = json.loads(resources.files("skill").joinpath(f"models/{locale}.json").read_text(encoding="utf-8"))
    values = printer_slot_values(printer_names or [], locale)
    # A name with nothing Alexa can take (only emoji, say) adds no value; with none at all
    # the model keeps its placeholder value, as a slot type must have one.
    if values:
        for slot_type in model["interactionModel"]["languageModel"]["types"]:
            if slot_type["name"] == "PRINTER_NAME":
                slot_type["values"] = values
    return model


_LANGUAGE_NAMES = {"en-US": "English (US)", "en-GB": "English (UK)", "de-DE": "German"}
_AMAZON_SAYS = {  # intent: (English, German) examples of what people say
    "AMAZON.HelpIntent": ('Amazon\'s own utterances, such as "help"', 'Amazons eigene, etwa "Hilfe"'),
    "AMAZON.StopIntent": ('Amazon\'s own, such as "stop"', 'Amazons eigene, etwa "stopp"'),
    "AMAZON.CancelIntent": ('Amazon\'s own, such as "cancel"', 'Amazons eigene, etwa "abbrechen"'),
    "AMAZON.FallbackIntent": ("anything the model does not cover", "alles, was das Modell nicht abdeckt"),
    "AMAZON.NavigateHomeIntent": ('"go home" on a device with a screen (answered with silence: the device '
                                  "leaves the skill)", '"geh zur Startseite" auf einem Gerät mit Bildschirm '
                                  "(ohne Antwort: das Gerät verlässt den Skill)"),
}


def utterances_markdown() -> str:
    """Every sample utterance per locale and intent, as docs/alexa.md lists them."""
    lines: list[str] = []
    for locale in LOCALES:
        model = interaction_model(locale)
        lines += [f"### {locale} — {_LANGUAGE_NAMES[locale]}", ""]
        for intent in model["interactionModel"]["languageModel"]["intents"]:
            samples = intent.get("samples") or []
            if samples:
                lines.append(f"- `{intent['name']}`: " + "; ".join(f"\"{s}\"" for s in samples))
            else:
                said = _AMAZON_SAYS[intent["name"]][1 if locale.startswith("de") else 0]
                lines.append(f"- `{intent['name']}`: {said}")
        lines.append("")
    return "\n".join(lines)


def build_package(endpoint: str, account_linking: dict[str, Any],
                  printer_names: list[str] | list[tuple[str, str | None]] | None = None) -> bytes:
    """A zip: skill-package/skill.json, one interaction model per locale, accountLinking.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("skill-package/skill.json", json.dumps(manifest(endpoint), indent=2))
        for locale in LOCALES:
            archive.writestr(f"skill-package/interactionModels/custom/{locale}.json",
                             json.dumps(interaction_model(locale, printer_names), indent=2, ensure_ascii=False))
        archive.writestr("accountLinking.json",
                         json.dumps({"accountLinkingRequest": account_linking}, indent=2))
        archive.writestr("README.txt", _README)
    return buffer.getvalue()


_README = """Herald skill package

skill-package/      the manifest and interaction models, in the ASK CLI layout:
                    ask smapi create-skill / ask deploy, or paste each file into the
                    developer console (Build > JSON Editor for the models).
accountLinking.json the account-linking settings; with the ASK CLI:
                    ask smapi update-account-linking-info -s SKILL_ID --account-linking-request file:accountLinking.json
                    (it holds your client secret: keep this file private).
"""
