"""Keeping a delivery's secrets out of the log: what is shown, and what is sealed.

A frozen request is stored twice over: the columns hold it with its secrets
replaced by ``REDACTED`` (what the API and pages show), and ``Delivery.sealed``
holds the request as it is sent, encrypted with ``herald.secret_box``. A secret
is the target's rendered ``@apiSecret`` wherever it appears, and the value of any
header, query parameter or body key whose name says it holds one. A request
without secrets is stored once, with ``sealed`` empty.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
# Names of headers, query parameters and body keys that carry credentials.
SECRET_NAME = re.compile(r"auth|token|secret|passw|api[-_]?key|apikey|x-key|signature|cookie|session|credential|^key$",
                         re.IGNORECASE)


def _scrub_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_NAME.search(str(k)) and isinstance(v, str | int | float) and v != ""
                    else _scrub(v, secrets)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def redact_url(url: str, secrets: list[str]) -> str:
    encoded = [quote(s, safe="") for s in secrets] + secrets
    try:
        parts = urlsplit(url)
    except ValueError:
        return _scrub_text(url, encoded)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(SECRET_NAME.search(k) and v for k, v in pairs):
        query = urlencode([(k, REDACTED if SECRET_NAME.search(k) and v else v) for k, v in pairs], safe="[]")
        parts = parts._replace(query=query)
    return _scrub_text(urlunsplit(parts), encoded)


def redact_headers(headers: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    return {k: (REDACTED if SECRET_NAME.search(k) and isinstance(v, str) and v else
                (_scrub_text(v, secrets) if isinstance(v, str) else v)) for k, v in (headers or {}).items()}


def redact_request(request: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """The request as shown: url, headers and body with their secrets replaced."""
    secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
    return {**request, "url": redact_url(request["url"], secrets),
            "headers": redact_headers(request["headers"], secrets),
            "body": _scrub(request["body"], secrets)}


def seal_request(box, request: dict[str, Any], secrets: list[str]) -> tuple[dict[str, Any], str]:
    """The redacted request for the columns, and the sealed original ("" when nothing was secret)."""
    shown = redact_request(request, secrets)
    if all(shown[k] == request[k] for k in ("url", "headers", "body")):
        return request, ""
    sealed = box.encrypt(json.dumps({k: request[k] for k in ("url", "headers", "body")},
                                    separators=(",", ":"), ensure_ascii=False))
    return shown, sealed


def unseal(box, sealed: str) -> dict[str, Any]:
    """url, headers and body of a sealed request."""
    return json.loads(box.decrypt(sealed))
