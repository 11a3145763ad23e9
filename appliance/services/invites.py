"""Signup: the signup modes (open, invite, closed) and admins' single-use invite links."""

from __future__ import annotations

import logging
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from appliance.db import shielded
from appliance.errors import APIError
from appliance.models import Invite, User
from appliance.ratelimit import Limit
from appliance.row_ids import row_id
from appliance.secrets import hash_password, new_token, token_hash
from appliance.services.accounts import check_email, check_password, send_verification
from appliance.services.runtime_settings import effective

log = logging.getLogger("appliance.accounts")

SIGNUPS_PER_ADDRESS = Limit(10, 60 * 60)
MAX_INVITE_DAYS = 30


def invite_link(herald, token: str) -> str:
    return f"{herald.settings.base_url}/invite/{token}"


async def create_invite(herald, admin: User, *, note: str = "", days: int = 7) -> tuple[str, Invite]:
    """A new invite link (returned once); only its hash is stored."""
    if not 1 <= days <= MAX_INVITE_DAYS:
        raise APIError(400, "invalid_days", f"An invite lasts 1 to {MAX_INVITE_DAYS} days.",
                       extra={"field": "days"})
    note = note.strip()
    if len(note) > 200:
        raise APIError(400, "invalid_note", "Keep the note under 200 characters.", extra={"field": "note"})
    token = new_token()
    invite = await shielded(Invite.create(token_hash=token_hash(token), note=note, created_by_id=admin.id,
                                          expires_at=herald.clock.now() + timedelta(days=days)))
    return token, invite


async def open_invites(herald) -> list[Invite]:
    return await Invite.filter(used_at=None, expires_at__gt=herald.clock.now()).order_by("-created_at")


async def revoke_invite(invite_id: int) -> None:
    number = row_id(Invite, invite_id)
    if number is None or not await shielded(Invite.filter(id=number, used_at=None).delete()):
        raise APIError(404, "not_found", "No open invite with this id.")


async def find_invite(herald, token: str) -> Invite:
    record = await Invite.get_or_none(token_hash=token_hash(token)) if token and len(token) < 100 else None
    if record is None or record.used_at is not None or record.expires_at <= herald.clock.now():
        raise APIError(400, "invalid_invite",
                       "This invite link is not valid: it may have expired or been used already. "
                       "Ask the admin for a new one.")
    return record


async def signup_mode(herald) -> str:
    return await effective(herald, "signup_mode")


async def signup(herald, email: str, password: str, *, invite_token: str = "", address: str = "") -> User:
    """Create an unverified account as the signup mode allows, and mail the verification link."""
    mode = await signup_mode(herald)
    if mode == "closed":
        raise APIError(403, "signup_closed", "Signup is closed on this Herald. Ask its admin for an account.")
    if mode == "invite" and not invite_token:
        raise APIError(403, "invite_required", "Signup on this Herald needs an invite link from its admin.")
    invite = await find_invite(herald, invite_token) if invite_token else None
    email = check_email(email)
    check_password(password)
    if address:
        await herald.rate_limiter.hit(f"signup:addr:{address}", SIGNUPS_PER_ADDRESS, "Too many signups.")
    if await User.filter(email=email).exists():
        raise APIError(409, "email_taken", "An account with this email address already exists.",
                       extra={"field": "email"})
    password_hash = hash_password(password)
    now = herald.clock.now()

    async def write() -> User:
        async with in_transaction():
            user = await User.create(email=email, password_hash=password_hash)
            if invite is not None:
                used = await Invite.filter(id=invite.id, used_at=None).update(used_at=now, used_by_id=user.id)
                if not used:
                    raise APIError(400, "invalid_invite", "This invite link was used already.")
            return user

    try:
        user = await shielded(write())
    except IntegrityError:
        raise APIError(409, "email_taken", "An account with this email address already exists.",
                       extra={"field": "email"}) from None
    log.info("Account %s signed up (%s)", user.id, "invite" if invite else mode)
    await send_verification(herald, user, address=address, limited=False)
    return user
