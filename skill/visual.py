"""The APL visual for devices with a screen: name, state, progress bar, time left, temperatures."""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from skill import status as st

TOKEN = "heraldPrinters"
_TAGS = re.compile(r"<[^>]+>")


# The document uses only what APL 1.0 has (Container, Sequence, Text, Frame, data binding,
# "when", styles and resources; tests/skill/test_visual.py checks), so any device with APL
# renders it. It declares the newest version both it and the device know, so a device gets a
# version it supports and a new device does not fall back to an old renderer.
NEWEST = "2023.3"
OLDEST = "1.0"


def version_key(version: str) -> tuple[int, ...] | None:
    """"1.4" -> (1, 4), "2023.3" -> (2023, 3) (which sort after every 1.x); None if not a version."""
    try:
        return tuple(int(part) for part in version.strip().split("."))
    except ValueError:
        return None


@cache
def document() -> dict[str, Any]:
    return json.loads(resources.files("skill").joinpath("apl/printers.json").read_text())


@cache
def document_for(max_version: str) -> dict[str, Any] | None:
    """The document for a device whose ``runtime.maxVersion`` is ``max_version``: declared at
    the newest version the device renders, at most NEWEST; None for a device below OLDEST or
    a version that cannot be read (a RenderDocument it cannot show would fail the answer)."""
    key = version_key(max_version)
    if key is None or key < version_key(OLDEST):  # type: ignore[operator]
        return None
    declared = max_version.strip() if key < version_key(NEWEST) else NEWEST  # type: ignore[operator]
    return {**document(), "version": declared}


def _plain(text: str) -> str:
    """Spoken SSML back to display text (screens show text, not markup)."""
    text = _TAGS.sub("", text)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text


def _sentence(text: str) -> str:
    """A spoken name may start in lower case ("the big one is idle."); the screen shows a sentence."""
    return text[:1].upper() + text[1:]


def datasource(printers: list[dict[str, Any]], phrases, now: datetime, zone) -> dict[str, Any]:
    items = []
    for printer in printers:
        job = st.current_job(printer, now)
        showing_job = st.condition(printer) in ("printing", "paused")
        temps = [
            f"{round(t.actual or 0)} °C" + (f" / {round(t.target)} °C" if t.target else "")
            for t in st.temperatures(printer)
        ] if st.condition(printer) not in ("never_seen", "unreachable") else []
        items.append({
            "name": printer["name"],
            "state": _sentence(_plain(phrases.brief(printer, now, zone))),
            "progress": round(job.progress) if showing_job and job.progress is not None else None,
            "timeLeft": _plain(phrases.left(job.remaining)) if showing_job and job.remaining is not None else "",
            "temperatures": " · ".join(temps),
        })
    return {"herald": {"title": "Herald", "printers": items}}
