"""Who is asking: the session cookie (with CSRF) or a Bearer token, per request.

Blueprints use ``require_user()`` for pages and the JSON API, and
``require_bearer_or_session(scope)`` where a ``hat_`` token may stand in for the
cookie (such views are marked ``@accepts_bearer``). A request is authenticated by
exactly one credential: on an ``@accepts_bearer`` view a Bearer header makes the
token that credential and the cookie is ignored; everywhere else the cookie is.
CSRF is enforced globally in ``check_csrf`` for every state-changing request
whose credential is the cookie, whatever other headers it carries, unless its
view is marked ``@csrf_exempt`` (endpoints that machines call: the plugin API,
/alexa, the OAuth token endpoint).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from quart import current_app, g, redirect, request

from appliance.accounts.models import AccessToken, LoginSession, User
from appliance.accounts.sessions import resolve_session
from appliance.core.db import shielded
from appliance.core.errors import NotAllowed, Unauthenticated, wants_json
from appliance.core.herald import current_herald
from appliance.core.netaddr import https_address_for
from appliance.core.secrets import ACCESS_TOKEN_PREFIX, constant_time_equal, token_hash

SESSION_COOKIE = "herald_session"
ANON_CSRF_COOKIE = "herald_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LAST_USED_EVERY = timedelta(seconds=60)

F = TypeVar("F", bound=Callable[..., Any])


def csrf_exempt(view: F) -> F:
    view._herald_csrf_exempt = True  # type: ignore[attr-defined]
    return view


def accepts_bearer(view: F) -> F:
    """The view authenticates with ``require_bearer_or_session``: a Bearer header, when sent, is its credential."""
    view._herald_accepts_bearer = True  # type: ignore[attr-defined]
    return view


class LoginRequired(Exception):
    """Raised for HTML pages: the error handler redirects to /login?next=..."""


async def load_session() -> LoginSession | None:
    if "herald_session" not in g:
        token = request.cookies.get(SESSION_COOKIE, "")
        g.herald_session = await resolve_session(token, clock=current_herald().clock)
    return g.herald_session


async def current_user() -> User | None:
    session = await load_session()
    return session.user if session else None


def csrf_token() -> str:
    """The token forms must echo back: the session's, or an anonymous visitor's cookie."""
    session = g.get("herald_session")
    if session is not None:
        return session.csrf_token
    token = g.get("herald_anon_csrf") or request.cookies.get(ANON_CSRF_COOKIE, "")
    if not token:
        token = secrets.token_urlsafe(32)
    g.herald_anon_csrf = token
    return token


def bearer_credential() -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None when another scheme (or none) was sent.

    The scheme is matched in any case: RFC 9110 §11.1 makes auth schemes case-insensitive,
    and some clients send ``bearer``.
    """
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


async def check_csrf() -> None:
    """before_request hook: refuse a state-changing cookie request without the CSRF token."""
    if request.method in SAFE_METHODS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "_herald_csrf_exempt", False):
        return
    if bearer_credential() is not None and getattr(view, "_herald_accepts_bearer", False):
        # The token is this request's one credential; require_user will not fall back to the cookie.
        g.herald_bearer_only = True
        return
    session = await load_session()
    expected = session.csrf_token if session else request.cookies.get(ANON_CSRF_COOKIE, "")
    sent = request.headers.get("X-CSRF-Token", "")
    if not sent and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = (await request.form).get("csrf_token", "")
    if not expected or not sent or not constant_time_equal(expected, sent):
        settings = current_herald().settings
        https = https_address_for(request, settings.base_url, settings.trusted_proxies)
        if https is not None:
            # The usual cause on a LAN address: Secure cookies are never sent over http.
            raise NotAllowed(f"This Herald is set up for https, and this form was sent over plain http, "
                             f"where your browser does not send Herald's cookies. Open "
                             f"{settings.base_url.rstrip('/')}/login and log in there.",
                             code="csrf_failed")
        raise NotAllowed("The form has expired or the CSRF token is missing; reload the page and try again.", code="csrf_failed")


async def require_user(*, admin: bool = False, verified: bool = False) -> User:
    """The logged-in user; ``verified=True`` also requires a confirmed email address."""
    if g.get("herald_bearer_only"):
        raise Unauthenticated("This request authenticates with its Bearer token, not the session.",
                              challenge='Bearer error="invalid_token"', code="invalid_token")
    user = await current_user()
    if user is None:
        if wants_json():
            raise Unauthenticated("Log in or send an access token.")
        raise LoginRequired()
    if admin and not user.is_admin:
        raise NotAllowed("Only an admin can do this.")
    if verified and user.email_verified_at is None:
        raise NotAllowed("Confirm your email address first: open the link Herald mailed you "
                       "(account settings can send a new one).", code="email_unverified")
    return user


async def bearer_token_user(scope: str) -> User | None:
    """The user of a valid ``hat_`` Bearer token with ``scope``; None when no Bearer was sent."""
    token = bearer_credential()
    if token is None:
        return None
    if not token.startswith(ACCESS_TOKEN_PREFIX):
        raise Unauthenticated("This endpoint takes an access token (hat_...).", challenge='Bearer error="invalid_token"', code="invalid_token")
    clock = current_herald().clock
    record = await AccessToken.get_or_none(token_hash=token_hash(token)).prefetch_related("user")
    now = clock.now()
    if record is None or record.revoked_at is not None or (record.expires_at and record.expires_at <= now):
        raise Unauthenticated("The access token is unknown, expired or revoked.", challenge='Bearer error="invalid_token"', code="invalid_token")
    if scope not in record.scope.split():
        raise NotAllowed(f"The access token lacks the scope {scope}.", challenge=f'Bearer error="insufficient_scope" scope="{scope}"', code="insufficient_scope")
    if record.last_used_at is None or now - record.last_used_at > _LAST_USED_EVERY:
        await shielded(AccessToken.filter(id=record.id).update(last_used_at=now))
    g.herald_access_token = record
    return record.user


async def require_bearer_or_session(scope: str) -> User:
    user = await bearer_token_user(scope)
    if user is not None:
        return user
    return await require_user()


def login_redirect():
    target = request.full_path.rstrip("?") if request.method == "GET" else "/"
    return redirect(f"/login?next={quote(target)}")
