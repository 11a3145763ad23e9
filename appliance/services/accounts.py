"""Account rules: creating users and checking passwords."""

from __future__ import annotations

import re

from tortoise.exceptions import IntegrityError

from appliance.clock import Clock
from appliance.db import shielded
from appliance.errors import APIError
from appliance.models import User
from appliance.secrets import (
    DUMMY_PASSWORD_HASH,
    hash_password,
    password_needs_rehash,
    verify_password,
)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte password is an attack
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    email = normalise_email(email)
    if len(email) > 254 or not _EMAIL.match(email):
        raise APIError(400, "invalid_email", "Enter a valid email address, like name@example.com.",
                       extra={"field": "email"})
    return email


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise APIError(400, "weak_password",
                       f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.",
                       extra={"field": "password"})
    if len(password) > MAX_PASSWORD_LENGTH:
        raise APIError(400, "invalid_password",
                       f"Passwords can be at most {MAX_PASSWORD_LENGTH} characters.",
                       extra={"field": "password"})
    return password


async def create_user(
    email: str, password: str, *, is_admin: bool = False, verified: bool = False, clock: Clock
) -> User:
    email = check_email(email)
    check_password(password)
    if await User.filter(email=email).exists():
        raise APIError(409, "email_taken", "An account with this email address already exists.",
                       extra={"field": "email"})
    try:
        return await shielded(
            User.create(
                email=email,
                password_hash=hash_password(password),
                is_admin=is_admin,
                email_verified_at=clock.now() if verified else None,
            )
        )
    except IntegrityError:
        raise APIError(409, "email_taken", "An account with this email address already exists.",
                       extra={"field": "email"}) from None


async def authenticate(email: str, password: str) -> User | None:
    """The user whose email and password match, else None (in constant-ish time)."""
    user = await User.get_or_none(email=normalise_email(email))
    if user is None:
        verify_password(DUMMY_PASSWORD_HASH, password[:MAX_PASSWORD_LENGTH])
        return None
    if not verify_password(user.password_hash, password[:MAX_PASSWORD_LENGTH]):
        return None
    if password_needs_rehash(user.password_hash):
        await shielded(User.filter(id=user.id).update(password_hash=hash_password(password)))
    return user


async def admin_exists() -> bool:
    return await User.filter(is_admin=True).exists()
