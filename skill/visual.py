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


@cache
def document() -> dict[str, Any]:
    return json.loads(resources.files("skill").joinpath("apl/printers.json").read_text())


def _plain(text: str) -> str:
    """Spoken SSML back to display text (screens show text, not markup)."""
    text = _TAGS.sub("", text)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text


def datasource(printers: list[dict[str, Any]], phrases, now: datetime, zone) -> dict[str, Any]:
    items = []
    for printer in printers:
        job = st.current_job(printer, now)
        showing_job = st.condition(printer) in ("printing", "paused")
        temps = [
            f"{phrases.degrees(t.actual)}" + (f" / {round(t.target)}" if t.target else "")
            for t in st.temperatures(printer)
        ] if st.condition(printer) not in ("never_seen", "unreachable") else []
        items.append({
            "name": printer["name"],
            "state": _plain(phrases.brief(printer, now, zone)),
            "progress": round(job.progress) if showing_job and job.progress is not None else None,
            "timeLeft": _plain(phrases.left(job.remaining)) if showing_job and job.remaining is not None else "",
            "temperatures": " · ".join(temps),
        })
    return {"herald": {"title": "Herald", "printers": items}}
