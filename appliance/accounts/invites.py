"""Signup: the signup modes (open, invite, closed) and admins' single-use invite links."""

from __future__ import annotations

import logging
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from appliance.accounts.models import Invite, User
from appliance.accounts.users import check_email, check_password, send_verification
from appliance.core.db import shielded
from appliance.core.errors import Conflict, Invalid, NotAllowed, NotFound
from appliance.core.herald import Herald
from appliance.core.ratelimit import Limit
from appliance.core.row_ids import row_id
from appliance.core.runtime_settings import effective
from appliance.core.secrets import hash_password, new_token, token_hash

log = logging.getLogger("appliance.accounts")

SIGNUPS_PER_ADDRESS = Limit(10, 60 * 60)
MAX_INVITE_DAYS = 30


def invite_link(herald: Herald, token: str) -> str:
    return f"{herald.settings.base_url}/invite/{token}"


async def create_invite(herald: Herald, admin: User, *, note: str = "", days: int = 7) -> tuple[str, Invite]:
    """A new invite link (returned once); only its hash is stored."""
    if not 1 <= days <= MAX_INVITE_DAYS:
        raise Invalid(f"An invite lasts 1 to {MAX_INVITE_DAYS} days.", field="days", code="invalid_days")
    note = note.strip()
    if len(note) > 200:
        raise Invalid("Keep the note under 200 characters.", field="note", code="invalid_note")
    token = new_token()
    invite = await shielded(Invite.create(token_hash=token_hash(token), note=note, created_by_id=admin.id,
                                          expires_at=herald.clock.now() + timedelta(days=days)))
    return token, invite


async def open_invites(herald: Herald) -> list[Invite]:
    return await Invite.filter(used_at=None, expires_at__gt=herald.clock.now()).order_by("-created_at")


async def revoke_invite(invite_id: int) -> None:
    number = row_id(Invite, invite_id)
    if number is None or not await shielded(Invite.filter(id=number, used_at=None).delete()):
        raise NotFound("No open invite with this id.")


async def find_invite(herald: Herald, token: str) -> Invite:
    record = await Invite.get_or_none(token_hash=token_hash(token)) if token and len(token) < 100 else None
    if record is None or record.used_at is not None or record.expires_at <= herald.clock.now():
        raise Invalid("This invite link is not valid: it may have expired or been used already. "
                       "Ask the admin for a new one.", code="invalid_invite")
    return record


async def signup_mode(herald: Herald) -> str:
    return await effective(herald, "signup_mode")


async def signup(herald: Herald, email: str, password: str, *, invite_token: str = "", address: str = "") -> User:
    """Create an unverified account as the signup mode allows, and mail the verification link."""
    mode = await signup_mode(herald)
    if mode == "closed":
        raise NotAllowed("Signup is closed on this Herald. Ask its admin for an account.", code="signup_closed")
    if mode == "invite" and not invite_token:
        raise NotAllowed("Signup on this Herald needs an invite link from its admin.", code="invite_required")
    invite = await find_invite(herald, invite_token) if invite_token else None
    email = check_email(email)
    check_password(password)
    if address:
        await herald.rate_limiter.hit(f"signup:addr:{address}", SIGNUPS_PER_ADDRESS, "Too many signups.")
    if await User.filter(email=email).exists():
        raise Conflict("An account with this email address already exists.", field="email", code="email_taken")
    password_hash = hash_password(password)
    now = herald.clock.now()

    async def write() -> User:
        async with in_transaction():
            user = await User.create(email=email, password_hash=password_hash)
            if invite is not None:
                used = await Invite.filter(id=invite.id, used_at=None).update(used_at=now, used_by_id=user.id)
                if not used:
                    raise Invalid("This invite link was used already.", code="invalid_invite")
            return user

    try:
        user = await shielded(write())
    except IntegrityError:
        raise Conflict("An account with this email address already exists.", field="email", code="email_taken") from None
    log.info("Account %s signed up (%s)", user.id, "invite" if invite else mode)
    await send_verification(herald, user, address=address, limited=False)
    return user
