"""One error type for the JSON API, mapped to JSON in one place; HTML pages get error.html."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart, jsonify, render_template, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error the client caused (or must be told about), with a stable machine code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


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
    @app.errorhandler(APIError)
    async def _api_error(error: APIError):
        if wants_json():
            return _json_error(error.status, error.code, error.message, error.headers, error.extra)
        html = await render_template("error.html", status=error.status, message=error.message)
        return html, error.status, error.headers

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
        if wants_json():
            return _json_error(status, error.name.lower().replace(" ", "_"), message)
        html = await render_template("error.html", status=status, message=message)
        return html, status

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "Herald hit an unexpected error; it has been logged."
        if wants_json():
            return _json_error(500, "internal_error", message)
        html = await render_template("error.html", status=500, message=message)
        return html, 500
