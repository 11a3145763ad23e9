"""Helpers for account tests: links from mail or the log, posting forms with the page's CSRF token."""

from __future__ import annotations

import re

from tests.support.users import _CSRF

LINK = re.compile(r"https?://[^\s]+/(verify|reset|setup|invite)/([A-Za-z0-9_-]+)")


def links_in(text: str, kind: str) -> list[str]:
    """Tokens of the ``kind`` links (verify, reset, setup, invite) in a text, in order."""
    return [token for found, token in LINK.findall(text) if found == kind]


def mail_body(message) -> str:
    payload = message.get_payload(decode=True)
    return payload.decode() if isinstance(payload, bytes) else str(message.get_payload())


async def post_form(client, path: str, form: dict, *, page: str | None = None, headers=None):
    """POST a form with the CSRF token taken from ``page`` (default /login, or / when logged in)."""
    token = await csrf_of(client, page or "/login")
    return await client.post(path, form={**form, "csrf_token": token}, headers=headers)


async def csrf_of(client, page: str) -> str:
    for path in (page, "/"):
        response = await client.get(path)
        match = _CSRF.search(await response.get_data(as_text=True))
        if match:
            return match.group(1)
    raise AssertionError(f"no CSRF token on {page} or /")
