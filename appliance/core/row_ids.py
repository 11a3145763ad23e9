"""Ids in URLs: a number no database column can hold is a 404, never a 500.

SQLite raises OverflowError for an integer beyond 64 bits and PostgreSQL a
DataError for one beyond its column (``integer`` is 32 bits, ``bigint`` 64), so
ids are bounded before they reach a query: ``<int:...>`` in a route does not
match past ``MAX_ROW_ID`` (``RowIdConverter``, registered as ``int`` for the
app), and an id taken from a string is checked against its own column with
``row_id(Model, text)``.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import BaseConverter, IntegerConverter

MAX_ROW_ID = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's bigint


class RowIdConverter(IntegerConverter):
    """``<int:...>`` that matches 0 to 2**63-1 only, so a longer number is a 404."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = MAX_ROW_ID, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class DigitsConverter(BaseConverter):
    """``<digits:...>``: only a run of digits matches (so ``/webhooks/presets`` is its own route);
    the text is handed on, and ``row_id`` makes a number no column holds a 404."""

    regex = r"\d+"


def row_id(model: Any, value: Any) -> int | None:
    """``value`` as a primary key of ``model``, or None when no row can have it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 19:
            return None
        number = int(text)
    limits = getattr(model._meta.pk, "constraints", {})
    if number < max(limits.get("ge", 0), 0) or number > limits.get("le", MAX_ROW_ID):
        return None
    return number
