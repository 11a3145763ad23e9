"""The printer a spoken name means: what Alexa heard or resolved, against printers' names.

Pure and small (no ask-sdk): the appliance's reminders (appliance/alexa/reminders.py) match names
without loading the skill's handlers and Amazon's models, which a Herald that nobody asks through
Alexa never needs in memory.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Any

_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "null": 0, "eins": 1, "zwei": 2, "zwo": 2, "drei": 3, "vier": 4, "funf": 5, "sechs": 6,
    "sieben": 7, "acht": 8, "neun": 9, "zehn": 10, "elf": 11, "zwolf": 12, "dreizehn": 13,
    "vierzehn": 14, "funfzehn": 15, "sechzehn": 16, "siebzehn": 17, "achtzehn": 18, "neunzehn": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "zwanzig": 20, "dreissig": 30, "vierzig": 40, "funfzig": 50, "sechzig": 60,
    "siebzig": 70, "achtzig": 80, "neunzig": 90,
}
_GERMAN_UNITS = {"ein": 1, "zwei": 2, "drei": 3, "vier": 4, "funf": 5, "sechs": 6, "sieben": 7,
                 "acht": 8, "neun": 9}
_GERMAN_TENS = ("zwanzig", "dreissig", "vierzig", "funfzig", "sechzig", "siebzig", "achtzig", "neunzig")
_GERMAN_COMPOUND = re.compile(r"^(" + "|".join(_GERMAN_UNITS) + r")und(" + "|".join(_GERMAN_TENS) + r")$")
# "two point four", "zwei komma vier": the word for the decimal point, between two numbers.
_POINT_WORDS = frozenset({"point", "dot", "punkt", "komma"})


def _digits(words: list[str]) -> list[str]:
    """Number words as digits: "voron two point four" -> voron 2 4 (as "Voron 2.4" reads once
    its punctuation is gone), "twenty four" and "vierundzwanzig" -> 24, "ender three" -> ender 3."""
    out: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        compound = _GERMAN_COMPOUND.match(word)
        if compound:
            out.append(str(_TENS[compound.group(2)] + _GERMAN_UNITS[compound.group(1)]))
        elif word in _TENS:
            value = _TENS[word]
            following = words[index + 1] if index + 1 < len(words) else ""
            if 0 < _UNITS.get(following, 0) < 10:
                value += _UNITS[following]
                index += 1
            out.append(str(value))
        elif word in _UNITS:
            out.append(str(_UNITS[word]))
        elif (word in _POINT_WORDS and out and out[-1].isdigit() and index + 1 < len(words)
              and (words[index + 1] in _UNITS or words[index + 1].isdigit())):
            pass  # the decimal point, which the written name's "." also becomes: a space
        else:
            out.append(word)
        index += 1
    return out


def _normal(text: str) -> str:
    """Words of letters and digits, lower case, accents dropped, numbers as digits: "Voron 2.4 🚀"
    and what Alexa hears ("voron two point four", "voron 2.4") or resolves (the skill package's
    slot value "Voron 2.4") are equal."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(_digits(re.sub(r"[\W_]+", " ", folded).split()))


def _names(printer: dict[str, Any]) -> list[str]:
    """The names a printer answers to: its name and, when its owner gave one, its spoken name."""
    alias = printer.get("spoken_name")
    return [printer["name"]] + ([alias] if isinstance(alias, str) and alias.strip() else [])


def match_printer(asked: str, printers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The printer a spoken name means: exact, then ignoring spaces, then contained, then the
    closest near match; each against the printer's name and its spoken name."""
    wanted = _normal(asked)
    if not wanted:
        return None
    by_name: dict[str, dict[str, Any]] = {}
    for printer in printers:
        for name in _names(printer):
            by_name.setdefault(_normal(name), printer)
    if wanted in by_name:
        return by_name[wanted]
    squashed = {key.replace(" ", ""): p for key, p in by_name.items()}
    if wanted.replace(" ", "") in squashed:
        return squashed[wanted.replace(" ", "")]
    contained = {id(p): p for key, p in by_name.items() if wanted in key or (key and key in wanted)}
    if len(contained) == 1:
        return next(iter(contained.values()))
    close = difflib.get_close_matches(wanted, list(by_name), n=1, cutoff=0.6)
    return by_name[close[0]] if close else None
