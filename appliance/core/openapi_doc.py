"""What quart-schema cannot see in a route: its success status and the uniform error answers.

Every error Herald sends has the body ``{"error": code, "message": text}`` (core/errors), so
each operation documents the error statuses the error mapping can give it; the success status
of operations without a response model is listed here, next to the others.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
# What any operation may answer: bad input, no or wrong credential, not allowed, no such thing,
# wrong method, slow body, conflict, too large, wrong media type, invalid, plugin too old,
# rate limited, database unavailable.
ERROR_STATUSES = ("400", "401", "403", "404", "405", "408", "409", "413", "415", "422", "426", "429", "503")
_DESCRIPTIONS = {"200": "OK (for /oauth/authorize: the consent page)", "201": "Created", "202": "Accepted", "204": "No content", "302": "Redirect"}

# (method, path) -> success statuses of operations quart-schema has no response model for.
SUCCESS: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/alexa"): ("200",),
    ("get", "/api/v1/me"): ("200",),
    ("delete", "/api/v1/printer"): ("204",),
    ("put", "/api/v1/printer/status"): ("204",),
    ("post", "/api/v1/printer/verify"): ("200",),
    ("post", "/api/v1/printer/events"): ("202",),
    ("post", "/api/v1/printer/offline"): ("204",),
    ("put", "/api/v1/printer/pictures/{kind}"): ("204",),
    ("post", "/api/v1/printer/webhooks/import"): ("200",),
    ("post", "/api/v1/link"): ("201",),
    ("post", "/api/v1/link/token"): ("200",),
    ("get", "/api/v1/tokens"): ("200",),
    ("post", "/api/v1/tokens"): ("201",),
    ("delete", "/api/v1/tokens/{token_id}"): ("204",),
    ("get", "/api/v1/webhooks"): ("200",),
    ("post", "/api/v1/webhooks"): ("201",),
    ("get", "/api/v1/webhooks/presets"): ("200",),
    ("get", "/api/v1/webhooks/{target_id}"): ("200",),
    ("put", "/api/v1/webhooks/{target_id}"): ("200",),
    ("patch", "/api/v1/webhooks/{target_id}"): ("200",),
    ("delete", "/api/v1/webhooks/{target_id}"): ("204",),
    ("post", "/api/v1/webhooks/{target_id}/rotate-secret"): ("200",),
    ("post", "/api/v1/webhooks/{target_id}/test"): ("202",),
    ("get", "/api/v1/webhooks/{target_id}/deliveries"): ("200",),
    ("get", "/api/v1/webhooks/deliveries/{delivery_id}"): ("200",),
    ("post", "/api/v1/webhooks/deliveries/{delivery_id}/resend"): ("202",),
    ("get", "/healthz"): ("200",),
    ("get", "/oauth/authorize"): ("200", "302"),
    ("post", "/oauth/authorize"): ("200", "302"),
    ("post", "/oauth/token"): ("200",),
    ("post", "/oauth/revoke"): ("200",),
}


# RFC 6749 section 5.2 errors: ``error`` and an optional ``error_description``.
OAUTH_ERROR_SCHEMA = {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}}
# Pages a browser is sent to (consent): their errors are the HTML error page.
BROWSER_PATHS = frozenset({"/oauth/authorize"})


def _error_response(path: str) -> dict[str, Any]:
    if path in BROWSER_PATHS:
        return {"description": "The error page", "content": {"text/html": {"schema": {"type": "string"}}}}
    name = "OAuthError" if path in ("/oauth/token", "/oauth/revoke") else "HeraldError"
    return {"description": "An error: `error` is a code; the rest says what to do",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


# /alexa: Amazon's signed request envelope (docs/alexa.md); quart-schema sees no model for it.
ALEXA_REQUEST = {
    "parameters": [
        {"name": "SignatureCertChainUrl", "in": "header", "required": True, "schema": {"type": "string"}},
        {"name": "Signature-256", "in": "header", "required": True, "schema": {"type": "string"}},
    ],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["version", "request"],
        "properties": {"version": {"type": "string"}, "request": {"type": "object"},
                       "context": {"type": "object"}, "session": {"type": "object"}}}}}},
}


_EVENT_TYPES = ["print.started", "print.done", "print.failed", "print.cancelled", "print.paused", "print.resumed",
                "print.progress", "printer.user_action_needed", "printer.error", "printer.offline",
                "printer.online"]
# A webhook target as the API takes it (docs/webhooks.md); headers and body are JSON template text.
WEBHOOK_TARGET = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"},
        "url": {"type": "string", "maxLength": 2048, "pattern": "^https?://[^/@\\s]+(/\\S*)?$",
                "description": "a URL template; @params are URL-encoded into it"},
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
        "content_type": {"enum": ["json", "form"]},
        "headers": {"type": "string", "contentMediaType": "application/json",
                    "description": "a JSON object of header templates, as text", "examples": ["{}"]},
        "body": {"type": "string", "contentMediaType": "application/json",
                 "description": "a JSON object template, as text", "examples": ['{"text": "@message"}']},
        "events": {"type": "array", "items": {"enum": _EVENT_TYPES}},
        "progress_step": {"type": "integer", "minimum": 1, "maximum": 99},
        "device_identifier": {"type": "string", "maxLength": 100},
        "enabled": {"type": "boolean"},
    },
}
REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/v1/webhooks"): {**WEBHOOK_TARGET, "required": ["name", "url"]},
    ("put", "/api/v1/webhooks/{target_id}"): WEBHOOK_TARGET,
    ("patch", "/api/v1/webhooks/{target_id}"): WEBHOOK_TARGET,
    ("post", "/api/v1/webhooks/{target_id}/test"): {
        "type": "object", "required": ["type"],
        "properties": {"type": {"enum": _EVENT_TYPES}, "printer_id": {"type": "string"}}},
    # The plugin's move from OctoPrint-Webhooks: its hooks as OctoPrint keeps them (docs/webhooks.md).
    ("post", "/api/v1/printer/webhooks/import"): {
        "type": "object", "required": ["hooks"],
        "properties": {"hooks": {"type": "array", "maxItems": 100, "items": {"type": "object"}}}},
}
FORM_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/oauth/token"): {"type": "object", "required": ["grant_type"], "properties": {
        "grant_type": {"enum": ["authorization_code", "refresh_token"]}, "code": {"type": "string"},
        "redirect_uri": {"type": "string"}, "code_verifier": {"type": "string"},
        "refresh_token": {"type": "string"}, "scope": {"type": "string"},
        "client_id": {"type": "string"}, "client_secret": {"type": "string"}}},
    ("post", "/oauth/revoke"): {"type": "object", "required": ["token"], "properties": {
        "token": {"type": "string"}, "token_type_hint": {"enum": ["access_token", "refresh_token"]}}},
}


# The plugin's pictures (the job's thumbnail, a webcam snapshot): the image itself as the body.
PICTURE_REQUEST = {
    "parameters": [
        {"name": "kind", "in": "path", "required": True, "schema": {"enum": ["thumbnail", "webcam"]}},
        {"name": "X-Herald-Job-File", "in": "header", "required": False, "schema": {"type": "string"}},
    ],
    "requestBody": {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                                "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the success and error statuses every operation can answer (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["HeraldError"] = ERROR_SCHEMA
    schemas["OAuthError"] = OAUTH_ERROR_SCHEMA
    for path, operations in document.get("paths", {}).items():
        error = _error_response(path)
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            if (method, path) in REQUEST_BODIES and "requestBody" not in operation:
                operation["requestBody"] = {"content": {"application/json": {"schema": REQUEST_BODIES[method, path]}}}
            if (method, path) in FORM_BODIES and "requestBody" not in operation:
                operation["requestBody"] = {"content": {"application/x-www-form-urlencoded": {
                    "schema": FORM_BODIES[method, path]}}}
            if (method, path) == ("put", "/api/v1/printer/pictures/{kind}"):
                operation.update({k: v for k, v in PICTURE_REQUEST.items() if k not in operation})
            if (method, path) == ("post", "/alexa"):
                operation.update({k: v for k, v in ALEXA_REQUEST.items() if k not in operation})
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True  # an empty body is a 400 everywhere
            responses = operation.setdefault("responses", {})
            # quart-schema keys responses by number; the same status as text would be a second key
            known = {str(key) for key in responses}
            for status in SUCCESS.get((method, path), ()):
                if status not in known:
                    responses[int(status)] = {"description": _DESCRIPTIONS[status]}
            for status in ERROR_STATUSES:
                if status not in known:
                    responses[int(status)] = error
    return document
