"""Login sessions: created at login, looked up by the cookie's token hash, ended at logout."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from appliance.accounts.models import LoginSession, User
from appliance.core.clock import Clock
from appliance.core.db import shielded
from appliance.core.secrets import new_token, token_hash

# Touch last_seen_at at most this often, so browsing does not write on every page.
_TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie; never stored
    session: LoginSession


async def start_session(user: User, *, clock: Clock, days: int, user_agent: str = "") -> NewSession:
    token = new_token()
    now = clock.now()
    session = await shielded(
        LoginSession.create(
            token_hash=token_hash(token),
            user=user,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + timedelta(days=days),
            last_seen_at=now,
            user_agent=user_agent[:255],
        )
    )
    return NewSession(token=token, session=session)


async def resolve_session(token: str, *, clock: Clock) -> LoginSession | None:
    if not token:
        return None
    session = await LoginSession.get_or_none(token_hash=token_hash(token)).prefetch_related("user")
    if session is None:
        return None
    now = clock.now()
    if session.expires_at <= now:
        await shielded(LoginSession.filter(id=session.id).delete())
        return None
    if session.last_seen_at is None or now - session.last_seen_at > _TOUCH_EVERY:
        session.last_seen_at = now
        await shielded(LoginSession.filter(id=session.id).update(last_seen_at=now))
    return session


async def end_session(token: str) -> None:
    if token:
        await shielded(LoginSession.filter(token_hash=token_hash(token)).delete())


async def end_other_sessions(user: User, keep_session_id: int | None) -> int:
    """End every session of the user but one (after a password change)."""
    query = LoginSession.filter(user=user)
    if keep_session_id is not None:
        query = query.exclude(id=keep_session_id)
    return await shielded(query.delete())
