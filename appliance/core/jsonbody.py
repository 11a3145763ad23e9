"""JSON request bodies and responses, by one rule for every JSON endpoint (docs/printers.md, "Errors").

- A body must be sent as ``Content-Type: application/json`` (415 otherwise) and is
  limited to 64 KiB (413).
- An empty body or text that is not JSON is a 400 ``invalid_json``.
- JSON of the wrong shape is a 422 ``invalid_request`` naming the field: a body that
  is not an object, a wrong type, and NaN or Infinity anywhere (RFC 8259 has no such
  numbers, yet Python's and pydantic's parsers take them, and one stored would make
  every later answer invalid JSON or break the chart).
- Answers never hold NaN or Infinity: ``install_json_provider`` writes them as null.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError
from quart import Quart, request

from appliance.core.errors import (
    HeraldError,
    Invalid,
    TooLarge,
    Unprocessable,
    UnsupportedMediaType,
)

MAX_JSON_BYTES = 64 * 1024
NOT_AN_OBJECT = "send a JSON object."

M = TypeVar("M", bound=BaseModel)


def _invalid(field: str, problem: str) -> HeraldError:
    return Unprocessable(f"{field}: {problem}", extra={"details": [{"field": field, "problem": problem}]})


def is_json_type(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def require_json_type() -> None:
    """415 unless the request says its body is JSON (call only when there is a body)."""
    if not is_json_type(request.mimetype):
        sent = request.mimetype or "none"
        raise UnsupportedMediaType(f"Content-Type: send the body as application/json (this was {sent[:60]}).")


async def read_json_bytes() -> bytes:
    """The raw body of a JSON request: 413 over 64 KiB, 415 when a body is not sent as JSON."""
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise TooLarge("JSON bodies are limited to 64 KiB.")
    # The defaults spelled out: only the full overload says the result is bytes.
    data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    if len(data) > MAX_JSON_BYTES:
        raise TooLarge("JSON bodies are limited to 64 KiB.")
    if data.strip():
        require_json_type()
    return data


def non_finite_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN or Infinity in parsed JSON, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "body")
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite_path(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def parse_json(data: bytes | str) -> Any:
    """JSON text as Python values: 400 when empty or not JSON, 422 naming a NaN or Infinity."""
    if not data or not data.strip():
        raise Invalid(f"body: empty; {NOT_AN_OBJECT}", code="invalid_json")
    try:
        value = pydantic_core.from_json(data, allow_inf_nan=True)
    except ValueError as exc:
        raise Invalid(f"body: not valid JSON ({exc}).", code="invalid_json") from None
    where = non_finite_path(value)
    if where:
        raise _invalid(where, "NaN and Infinity are not JSON numbers; send a finite number or null")
    return value


def parse_object(data: bytes | str) -> dict[str, Any]:
    value = parse_json(data)
    if not isinstance(value, dict):
        raise _invalid("body", NOT_AN_OBJECT)
    return value


# What a NaN or an infinite number looks like in JSON text: the bare constants, or a number
# too large for a float (an exponent of three digits, or hundreds of digits). Text that
# may hold one (a file called "NaN.gcode" does too) takes the exact, slower check.
_BIG_EXPONENT = re.compile(rb"\d[eE][+-]?\d\d\d")
_MANY_DIGITS = re.compile(rb"\d{300}")


def _may_hold_non_finite(raw: bytes) -> bool:
    # About 1.5 µs for a status body, against 2.7 µs for parsing it and walking the values.
    return (b"NaN" in raw or b"Infinity" in raw or _BIG_EXPONENT.search(raw) is not None
            or _MANY_DIGITS.search(raw) is not None)


def parse_model(model: type[M], data: bytes | str) -> M:
    """Validate JSON text against a model: the rules above, then 422 naming the field.

    The status push runs through here on every check-in, so a well-formed body is parsed
    once, by pydantic; the body-level checks run only when that fails or the text may
    hold a non-finite number.
    """
    raw = data if isinstance(data, bytes) else data.encode()
    if _may_hold_non_finite(raw):
        parse_object(raw)  # names a NaN/Infinity anywhere, even in fields the model keeps as-is
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        parse_object(raw)  # empty, not JSON, not an object: said at the body level first
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> HeraldError:
    """A pydantic error as the API's 422: the first problem's field leads the message."""
    details = [{"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
               for err in exc.errors(include_url=False)]
    message = f"{details[0]['field']}: {details[0]['problem']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return Unprocessable(message, extra={"details": details})


async def read_model(model: type[M]) -> M:
    return parse_model(model, await read_json_bytes())


async def read_object() -> dict[str, Any]:
    """A JSON object body, for endpoints that validate it by hand."""
    return parse_object(await read_json_bytes())


# --- answers ---------------------------------------------------------------------------------


def finite(value: Any) -> Any:
    """``value`` with every NaN and Infinity replaced by None (rows stored before they were refused)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def install_json_provider(app: Quart) -> None:
    """Make ``app.json`` (jsonify, dict answers) write null for NaN/Infinity and refuse reading them."""
    base = type(app.json)

    class FiniteJSONProvider(base):  # type: ignore[valid-type, misc]
        def dumps(self, obj: Any, **kwargs: Any) -> str:
            kwargs["allow_nan"] = False
            try:
                return super().dumps(obj, **kwargs)
            except ValueError as exc:
                if "Out of range float" not in str(exc):
                    raise
                return super().dumps(finite(obj), **kwargs)

        def loads(self, s: str | bytes, **kwargs: Any) -> Any:
            kwargs.setdefault("parse_constant", _refuse_constant)
            return super().loads(s, **kwargs)

    app.json = FiniteJSONProvider(app)

