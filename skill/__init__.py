"""Herald's Alexa skill: handlers, phrasing per locale, interaction models, manifest template.

Pure: it reads printers from a ``PrinterStatusSource`` and knows nothing of HTTP
or the database. ``invoke`` takes the parsed request envelope and returns the
response as a dict, ready to encode as JSON.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from skill.source import PrinterStatusSource, StaticSource

LOCALES = ("en-US", "en-GB", "de-DE")


@cache
def _skill():
    from skill.handlers import build_skill

    return build_skill()


@cache
def _serializer():
    from skill.serialize import FastSerializer

    return FastSerializer()


def invoke(envelope: dict[str, Any], source: PrinterStatusSource | None) -> dict[str, Any]:
    """Answer one request envelope (a dict); ``source`` None means no account is linked."""
    from ask_sdk_model import RequestEnvelope

    serializer = _serializer()
    request = serializer.deserialize_parsed(envelope, RequestEnvelope)
    response = _skill().invoke(request_envelope=request, context=source)
    return serializer.serialize(response)


__all__ = ["LOCALES", "PrinterStatusSource", "StaticSource", "invoke"]
