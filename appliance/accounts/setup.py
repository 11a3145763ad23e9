"""First run: until an admin exists, a one-time setup link (printed to the log) creates the first one."""

from __future__ import annotations

import logging

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from appliance.accounts.models import SetupToken, User
from appliance.accounts.users import admin_exists, check_email, check_password
from appliance.core.db import shielded
from appliance.core.errors import Conflict, NotFound
from appliance.core.herald import Herald
from appliance.core.secrets import hash_password, new_token, token_hash

log = logging.getLogger("appliance.setup")

_NAME = "first_admin"


def setup_link(herald: Herald, token: str) -> str:
    return f"{herald.settings.base_url}/setup/{token}"


async def _stored_token(herald: Herald) -> str | None:
    row = await SetupToken.get_or_none(name=_NAME)
    if row is None:
        return None
    try:
        token = herald.secret_box.decrypt(row.token_encrypted)
    except ValueError:
        return None  # the data directory's key changed: the old link is lost
    return token if token_hash(token) == row.token_hash else None


async def ensure_setup_link(herald: Herald) -> str | None:
    """The setup link while no admin exists (created, or recreated when lost), else None.

    Several processes starting at once agree on one token: the row's primary
    key admits one, and the losers read the winner's.
    """
    if await admin_exists():
        await SetupToken.all().delete()
        return None
    row = await SetupToken.get_or_none(name=_NAME)
    token = await _stored_token(herald) if row is not None else None
    if token is None:
        token = new_token()
        if row is not None:
            # Lost (undecryptable): replace it. Deleting by the old hash spares a
            # replacement another process made meanwhile; then the primary key admits one.
            await SetupToken.filter(name=_NAME, token_hash=row.token_hash).delete()
        try:
            await SetupToken.create(name=_NAME, token_hash=token_hash(token),
                                    token_encrypted=herald.secret_box.encrypt(token))
        except IntegrityError:
            token = await _stored_token(herald)
            if token is None:
                raise
    return setup_link(herald, token)


async def announce_setup_link(herald: Herald) -> None:
    link = await ensure_setup_link(herald)
    if link:
        log.warning("No admin account exists yet. Open this one-time link to create it: %s "
                    "(or run: herald create-admin)", link)


async def check_setup_token(token: str) -> None:
    """Refuse unless no admin exists and ``token`` is the setup token."""
    if await admin_exists():
        raise NotFound("This Herald already has an admin; log in instead.", code="setup_done")
    if not token or len(token) > 100 or not await SetupToken.filter(token_hash=token_hash(token)).exists():
        raise NotFound("This setup link is not valid. Use the link printed in Herald's log.", code="invalid_setup_token")


async def create_first_admin(herald: Herald, token: str, email: str, password: str) -> User:
    """Use the setup link: create the first admin (verified) and retire the link."""
    await check_setup_token(token)
    email = check_email(email)
    check_password(password)
    password_hash = hash_password(password)
    now = herald.clock.now()

    async def write() -> User:
        async with in_transaction():
            # Deleting the token first makes the link single-use under concurrent posts.
            if not await SetupToken.filter(token_hash=token_hash(token)).delete():
                raise NotFound("This setup link was used already.", code="invalid_setup_token")
            if await User.filter(is_admin=True).exists():
                raise NotFound("This Herald already has an admin; log in instead.", code="setup_done")
            existing = await User.get_or_none(email=email)
            if existing is not None:
                raise Conflict("An account with this email address already exists; "
                               "use another address (an admin can promote that account later).", field="email", code="email_taken")
            return await User.create(email=email, password_hash=password_hash, is_admin=True,
                                     email_verified_at=now)

    user = await shielded(write())
    log.info("First admin %s created with the setup link", user.id)
    return user
