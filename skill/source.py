"""What the skill needs to know, and nothing about where it comes from."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class PrinterStatusSource(Protocol):
    """The printers of the account a request is answered for.

    ``printers()`` returns dicts in the shape of Herald's ``<printer>``:
    ``{"id", "name", "linked", "online", "last_seen" (ISO 8601 UTC or None),
    "status" (the last status pushed, or None)}``, and optionally ``"spoken_name"``
    (what the owner wants Alexa to call the printer, or None).
    """

    def printers(self) -> list[dict[str, Any]]: ...

    def time_zone(self) -> str:
        """The IANA time zone to tell clock times in, e.g. ``Europe/Berlin``: the Echo
        device's own, else the account's."""
        ...

    def now(self) -> datetime:
        """The current moment (aware)."""
        ...


class StaticSource:
    """A source holding plain values: what the appliance hands the skill per request."""

    def __init__(self, printers: list[dict[str, Any]], time_zone: str, now: datetime,
                 user_id: int | None = None) -> None:
        self.user_id = user_id  # the Herald user answered for (the appliance's, not the skill's)
        self._printers = printers
        self._time_zone = time_zone
        self._now = now

    def printers(self) -> list[dict[str, Any]]:
        return self._printers

    def time_zone(self) -> str:
        return self._time_zone

    def now(self) -> datetime:
        return self._now
