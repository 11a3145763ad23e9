"""Domain errors, and the one mapping from them to the JSON API and to the HTML error page.

Rules raise what went wrong in the user's terms -- ``NotFound``, ``Conflict``,
``Invalid`` (naming the field), ``RateLimited`` (with the wait), ``NotAllowed``, ... --
never an HTTP status. ``STATUS`` below is the only place that knows which status
each kind answers with; ``register_error_handlers`` turns an error into
``{"error": code, "message": ..., ...}`` for programs and into ``error.html`` for
pages. Every error carries a stable machine ``code`` (part of the API contract:
clients switch on it) and a message a person can act on.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from quart import Quart, current_app, jsonify, render_template, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from appliance.core.storage import DISK_FULL_MESSAGE, DiskState, is_disk_full

log = logging.getLogger(__name__)


class HeraldError(Exception):
    """Something the caller must be told, with a stable machine ``code``.

    ``field`` names the input that was wrong (forms show the message beside it, the
    JSON body carries it as ``"field"``). ``extra`` adds members to the JSON body.
    ``challenge`` is the ``WWW-Authenticate`` value for a refused credential.
    """

    default_code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
        challenge: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.extra: dict[str, Any] = dict(extra or {})
        if field is not None:
            self.extra.setdefault("field", field)
        self.challenge = challenge


class Invalid(HeraldError):
    """The input is wrong: a form field, a query parameter, a value out of range."""


class Unprocessable(HeraldError):
    """A well-formed JSON body whose content breaks the contract (a field's value or type)."""


class Unauthenticated(HeraldError):
    """No credential, or one Herald does not accept (unknown, expired, revoked)."""

    default_code = "unauthenticated"


class NotAllowed(HeraldError):
    """The caller is known but may not do this (not an admin, a missing scope, closed signup)."""

    default_code = "forbidden"


class NotFound(HeraldError):
    """No such thing -- also for another user's things, whose existence is not told."""

    default_code = "not_found"


class Conflict(HeraldError):
    """The request clashes with what is stored (a taken email, the last admin, decided twice)."""

    default_code = "conflict"


class TooLarge(HeraldError):
    """A body or a file over its limit."""

    default_code = "body_too_large"


class UnsupportedMediaType(HeraldError):
    """A body in a format the endpoint does not take."""

    default_code = "unsupported_media_type"


class UpgradeRequired(HeraldError):
    """The caller's software is too old for this Herald (the plugin's version)."""

    default_code = "upgrade_required"


class RateLimited(HeraldError):
    """Too many tries; ``retry_after`` says how many seconds to wait (at least 1)."""

    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(message, code=code, extra={"retry_after": seconds})
        self.retry_after = seconds


class Unavailable(HeraldError):
    """Herald cannot do it right now (the database is down, too busy); try again later."""

    default_code = "unavailable"


# The one mapping from a kind of error to its HTTP status; subclasses inherit theirs.
STATUS: dict[type[HeraldError], int] = {
    HeraldError: 400,
    Invalid: 400,
    Unauthenticated: 401,
    NotAllowed: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    Unprocessable: 422,
    UpgradeRequired: 426,
    RateLimited: 429,
    Unavailable: 503,
}


def status_of(error: HeraldError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


def headers_of(error: HeraldError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if error.challenge is not None:
        headers["WWW-Authenticate"] = error.challenge
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return headers


def invalid_parameter(name: str, problem: str, *, kind: type[HeraldError] = Invalid) -> HeraldError:
    """The error for one bad input, in the shape schema validation answers with (``details``)."""
    return kind(f"{name}: {problem}", extra={"details": [{"field": name, "problem": problem}]})


# What programs call answers JSON errors; every other path is a page (or a page's
# download) and answers error.html, unless the client asks for JSON.
_MACHINE_PREFIXES = ("/api/",)
_MACHINE_PATHS = frozenset({"/alexa", "/oauth/token", "/oauth/revoke", "/healthz"})


def wants_json() -> bool:
    path = request.path
    if path.startswith(_MACHINE_PREFIXES) or path.rstrip("/") in _MACHINE_PATHS:
        return True
    accept = request.accept_mimetypes
    return accept.best == "application/json"


def _json_error(status: int, code: str, message: str, headers=None, extra=None):
    body = {"error": code, "message": message}
    if extra:
        body.update(extra)
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _validation_message(error: RequestSchemaValidationError) -> tuple[str, list[dict[str, Any]]]:
    inner = error.validation_error
    details: list[dict[str, Any]] = []
    errors = getattr(inner, "errors", None)
    if callable(errors):
        for item in errors():
            loc = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            problem = item.get("msg", "invalid")
            if not loc and item.get("type") in ("model_type", "model_attributes_type", "dict_type"):
                problem = "send a JSON object."  # pydantic's words name a Python class
            details.append({"field": loc or "body", "problem": problem})
    if details:
        first = details[0]
        message = f"{first['field']}: {first['problem']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
    else:
        message = str(inner) or "request body is not valid"
    return message, details


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(HeraldError)
    async def _domain_error(error: HeraldError):
        status, headers = status_of(error), headers_of(error)
        if wants_json():
            return _json_error(status, error.code, error.message, headers, error.extra)
        html = await render_template("error.html", status=status, message=error.message)
        return html, status, headers

    @app.errorhandler(RequestSchemaValidationError)
    async def _schema_error(error: RequestSchemaValidationError):
        message, details = _validation_message(error)
        return _json_error(422, "invalid_request", message, extra={"details": details})

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException):
        status = error.code or 500
        message = error.description or error.name
        if status == 413:
            message = "request body is too large"
        headers = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(sorted(error.valid_methods))  # RFC 9110 15.5.6: a 405 names them
        if wants_json():
            return _json_error(status, error.name.lower().replace(" ", "_"), message, headers=headers)
        html = await render_template("error.html", status=status, message=message)
        return html, status, headers

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception):
        if is_disk_full(error):
            disk = current_app.extensions["herald"].part(DiskState)
            if disk.full(error, datetime.now(UTC)):
                log.error("The data disk is full (%s): writes fail until there is room; nothing is "
                          "corrupted, clients are told to retry", error)
            if wants_json():
                return _json_error(503, "disk_full", DISK_FULL_MESSAGE, {"Retry-After": "30"})
            html = await render_template("error.html", status=503, message=DISK_FULL_MESSAGE)
            return html, 503, {"Retry-After": "30"}
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "Herald hit an unexpected error; it has been logged."
        if wants_json():
            return _json_error(500, "internal_error", message)
        html = await render_template("error.html", status=500, message=message)
        return html, 500
