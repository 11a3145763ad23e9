"""Account rules: users, passwords, mail tokens (verify, change address, reset), login throttling.

What an unverified user may do: everything with their own data (log in, link
and watch printers, account settings) except creating personal access tokens,
credentials that outlive a browser session. ``require_user(verified=True)``
applies the same rule to other routes. See docs/accounts.md.
"""

from __future__ import annotations

import logging
import math
import re
import zoneinfo
from datetime import datetime, timedelta
from functools import lru_cache

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from appliance.accounts.models import AccessToken, EmailToken, LoginSession, User
from appliance.core.clock import Clock
from appliance.core.db import shielded
from appliance.core.errors import Conflict, HeraldError, Invalid, RateLimited
from appliance.core.herald import Herald
from appliance.core.mail import MailResult, send_mail
from appliance.core.ratelimit import GROUP_SEPARATOR, Limit
from appliance.core.secrets import (
    DUMMY_PASSWORD_HASH,
    hash_password,
    new_token,
    password_needs_rehash,
    token_hash,
    verify_password,
)

log = logging.getLogger("appliance.accounts")

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte password is an attack
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    email = normalise_email(email)
    if len(email) > 254 or not _EMAIL.match(email):
        raise Invalid("Enter a valid email address, like name@example.com.", field="email", code="invalid_email")
    return email


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.", field="password", code="weak_password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"Passwords can be at most {MAX_PASSWORD_LENGTH} characters.", field="password", code="invalid_password")
    return password


async def create_user(
    email: str, password: str, *, is_admin: bool = False, verified: bool = False, clock: Clock
) -> User:
    email = check_email(email)
    check_password(password)
    if await User.filter(email=email).exists():
        raise Conflict("An account with this email address already exists.", field="email", code="email_taken")
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
        raise Conflict("An account with this email address already exists.", field="email", code="email_taken") from None


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


# --- mail tokens: verification, address change, password reset ---------------------------

TOKEN_HOURS = 24  # verification, address-change and reset links all last 24 h and work once
PURPOSE_VERIFY = "verify"  # confirm the account's address
PURPOSE_EMAIL = "email"  # confirm a new address (EmailToken.email holds it)
PURPOSE_RESET = "reset"  # set a new password

# Mail a caller can trigger: per account (or, for reset, per address typed in, so the
# limit answers the same whether the account exists) and per client address.
MAIL_PER_ACCOUNT = Limit(3, 15 * 60)
MAIL_PER_ADDRESS = Limit(10, 60 * 60)
# Failed logins; once over any of these, further tries wait for Retry-After (see login()).
# Per account *and* client address: five wrong passwords lock only that address out of that
# account, so an attacker who knows an email address cannot lock its owner out.
LOGIN_FAILS_PER_ACCOUNT_AND_ADDRESS = Limit(5, 15 * 60)
# Per client address across accounts: credential stuffing from one address.
LOGIN_FAILS_PER_ADDRESS = Limit(20, 15 * 60)
# Per account across all addresses: a backstop against guessing one password from many
# addresses. Reaching it takes at least 20 addresses (5 each) within 15 minutes, and
# it does lock the owner out too, until the window passes or the password is reset.
LOGIN_FAILS_PER_ACCOUNT = Limit(100, 15 * 60)

_LINK_PATHS = {PURPOSE_VERIFY: "/verify", PURPOSE_EMAIL: "/verify", PURPOSE_RESET: "/reset"}


def _invalid_token() -> HeraldError:
    return Invalid("This link is not valid: it may have been replaced by a newer one, have expired "
                    f"(links last {TOKEN_HOURS} hours) or been used already.", code="invalid_token")


def _used_token() -> HeraldError:
    return Invalid("This link was used already; each link works once.", code="invalid_token")


async def issue_email_token(user: User, purpose: str, *, clock: Clock, email: str | None = None) -> str:
    """A fresh single-use token for ``purpose``; earlier unused ones of that purpose stop working."""
    token = new_token()
    now = clock.now()

    async def write() -> None:
        async with in_transaction():
            await EmailToken.filter(user_id=user.id, purpose=purpose, used_at=None).delete()
            await EmailToken.filter(expires_at__lt=now).delete()
            await EmailToken.create(token_hash=token_hash(token), purpose=purpose, user_id=user.id,
                                    email=email or user.email, expires_at=now + timedelta(hours=TOKEN_HOURS))

    await shielded(write())
    return token


def token_link(herald: Herald, purpose: str, token: str) -> str:
    return f"{herald.settings.base_url}{_LINK_PATHS[purpose]}/{token}"


async def find_email_token(token: str, purposes: tuple[str, ...], *, clock: Clock) -> EmailToken:
    """The valid (unused, unexpired) token record, or a 400 naming the problem.

    Only checks: nothing is written, so a GET may call it as often as mail scanners like.
    """
    if not token or len(token) > 100:
        raise _invalid_token()
    record = await EmailToken.get_or_none(token_hash=token_hash(token)).prefetch_related("user")
    if record is None or record.purpose not in purposes:
        raise _invalid_token()
    if record.used_at is not None:
        raise _used_token()
    if record.expires_at <= clock.now():
        raise Invalid(f"This link has expired: links last {TOKEN_HOURS} hours. Ask for a new one.", code="invalid_token")
    return record


async def _use(record: EmailToken, now) -> None:
    """Mark the token used, inside the caller's transaction; refuse a token used meanwhile."""
    if not await EmailToken.filter(id=record.id, used_at=None).update(used_at=now):
        raise _used_token()


async def _mail_limits(herald: Herald, key: str, address: str) -> None:
    limiter = herald.rate_limiter
    message = "Too many mails were asked for."
    if address:
        await limiter.hit(f"mail:addr:{address}", MAIL_PER_ADDRESS, message)
    await limiter.hit(f"mail:acct:{key}", MAIL_PER_ACCOUNT, message)


async def send_verification(herald: Herald, user: User, *, address: str, limited: bool = True) -> MailResult:
    """Mail the user a link confirming their address (rate-limited per account and address)."""
    if limited:
        await _mail_limits(herald, user.email, address)
    token = await issue_email_token(user, PURPOSE_VERIFY, clock=herald.clock)
    link = token_link(herald, PURPOSE_VERIFY, token)
    return await send_mail(
        herald, to=user.email, subject="Confirm your email address for Herald",
        text=f"Open this link and press \"Confirm address\" to confirm your email address for Herald:\n\n"
             f"{link}\n\n"
             f"The link works once and expires in {TOKEN_HOURS} hours. "
             "If you did not sign up for Herald, ignore this mail.\n",
    )


async def admin_verification_link(herald: Herald, user: User) -> str:
    """A fresh verification link for an admin to hand over (no mail is sent)."""
    if user.email_verified_at is not None:
        raise Conflict(f"{user.email} is already verified.", code="already_verified")
    token = await issue_email_token(user, PURPOSE_VERIFY, clock=herald.clock)
    return token_link(herald, PURPOSE_VERIFY, token)


async def check_verification_link(herald: Herald, token: str) -> EmailToken:
    """The verification (or address-change) token, if it would confirm its address now.

    Changes nothing: the link's page (GET) shows this and asks for a click, and only
    ``verify_email`` (POST) uses the token, so a mail scanner that fetches every link
    in a mail cannot use it up before the user clicks. ``record.email`` is the address.
    """
    record = await find_email_token(token, (PURPOSE_VERIFY, PURPOSE_EMAIL), clock=herald.clock)
    if record.purpose == PURPOSE_VERIFY and record.email != record.user.email:
        raise _invalid_token()  # the account's address changed since the link was sent
    if record.purpose == PURPOSE_EMAIL and await User.filter(email=record.email).exclude(
            id=record.user_id).exists():
        raise Conflict("Another account uses this email address now.", code="email_taken")
    return record


async def verify_email(herald: Herald, token: str) -> User:
    """Use a verification (or address-change) link; returns the verified user."""
    record = await check_verification_link(herald, token)
    user = record.user
    now = herald.clock.now()

    async def write() -> None:
        async with in_transaction():
            await _use(record, now)
            if record.purpose == PURPOSE_EMAIL:
                if await User.filter(email=record.email).exclude(id=user.id).exists():
                    raise Conflict("Another account uses this email address now.", code="email_taken")
                await User.filter(id=user.id).update(email=record.email, email_verified_at=now)
            else:
                await User.filter(id=user.id).update(email_verified_at=now)

    try:
        await shielded(write())
    except IntegrityError:
        raise Conflict("Another account uses this email address now.", code="email_taken") from None
    await user.refresh_from_db()
    return user


async def request_password_reset(herald: Herald, email: str, *, address: str) -> None:
    """Mail a reset link if the account exists. Answers the same either way."""
    email = normalise_email(email)
    if not email or len(email) > 254:
        raise Invalid("Enter the email address of your account.", field="email", code="invalid_email")
    # Limited by the address typed in, whether or not an account has it.
    await _mail_limits(herald, email, address)
    user = await User.get_or_none(email=email)
    if user is None:
        log.info("Password reset asked for an address without an account")
        return
    token = await issue_email_token(user, PURPOSE_RESET, clock=herald.clock)
    await send_mail(
        herald, to=user.email, subject="Reset your Herald password",
        text=f"Open this link to choose a new Herald password:\n\n{token_link(herald, PURPOSE_RESET, token)}\n\n"
             f"The link works once and expires in {TOKEN_HOURS} hours. "
             "If you did not ask for this, ignore this mail; your password stays as it is.\n",
    )


async def reset_password(herald: Herald, token: str, new_password: str) -> User:
    """Set a new password with a reset link; every session and personal access token of the user ends."""
    check_password(new_password)
    record = await find_email_token(token, (PURPOSE_RESET,), clock=herald.clock)
    now = herald.clock.now()
    password_hash = hash_password(new_password)

    async def write() -> None:
        async with in_transaction():
            await _use(record, now)
            # The link reached the account's mailbox, which also proves the address.
            updates: dict[str, str | datetime] = {"password_hash": password_hash}
            if record.email == record.user.email and record.user.email_verified_at is None:
                updates["email_verified_at"] = now
            await User.filter(id=record.user_id).update(**updates)
            await LoginSession.filter(user_id=record.user_id).delete()
            # A reset is how a taken-over account is won back: what the taker made ends too.
            await _end_personal_tokens(record.user_id, now)

    await shielded(write())
    await lift_login_limits(herald, record.user.email)
    return record.user


# --- signed-in changes ---------------------------------------------------------------


def _require_password(user: User, password: str) -> None:
    if not verify_password(user.password_hash, password[:MAX_PASSWORD_LENGTH]):
        raise Invalid("Your current password is not right.", field="current_password", code="wrong_password")


async def change_password(user: User, current: str, new: str, *, keep_session_id: int | None,
                          clock: Clock, end_tokens: bool = True) -> int:
    """Change the password; every other session of the user ends, and (unless the user keeps
    them) every personal access token. Returns how many tokens were ended."""
    _require_password(user, current)
    check_password(new)
    password_hash = hash_password(new)
    ended = 0

    async def write() -> None:
        nonlocal ended
        async with in_transaction():
            await User.filter(id=user.id).update(password_hash=password_hash)
            query = LoginSession.filter(user_id=user.id)
            if keep_session_id is not None:
                query = query.exclude(id=keep_session_id)
            await query.delete()
            if end_tokens:
                ended = await _end_personal_tokens(user.id, clock.now())

    await shielded(write())
    user.password_hash = password_hash
    return ended


async def _end_personal_tokens(user_id: int, now: datetime) -> int:
    """Revoke a user's personal access tokens (not the apps they linked: those have their own page)."""
    return await AccessToken.filter(user_id=user_id, client_id="", revoked_at=None).update(revoked_at=now)


async def request_email_change(herald: Herald, user: User, password: str, new_email: str, *, address: str) -> str:
    """Mail a confirmation link to the new address; the account keeps the old one until it is used."""
    _require_password(user, password)
    new_email = check_email(new_email)
    if new_email == user.email:
        raise Invalid("This is already your email address.", field="email", code="same_email")
    if await User.filter(email=new_email).exists():
        raise Conflict("An account with this email address already exists.", field="email", code="email_taken")
    await _mail_limits(herald, user.email, address)
    token = await issue_email_token(user, PURPOSE_EMAIL, clock=herald.clock, email=new_email)
    await send_mail(
        herald, to=new_email, subject="Confirm your new email address for Herald",
        text=f"Open this link and press \"Confirm address\" to make {new_email} the address of your "
             "Herald account:\n\n"
             f"{token_link(herald, PURPOSE_EMAIL, token)}\n\n"
             f"The link works once and expires in {TOKEN_HOURS} hours.\n",
    )
    return new_email


async def pending_email(user: User, *, clock: Clock) -> str | None:
    record = await EmailToken.filter(user_id=user.id, purpose=PURPOSE_EMAIL, used_at=None,
                                     expires_at__gt=clock.now()).first()
    return record.email if record else None


def check_time_zone(name: str) -> str:
    name = name.strip()
    if name not in _time_zones():
        raise Invalid("Choose a time zone by its IANA name, like Europe/Berlin or America/New_York.", field="time_zone", code="invalid_time_zone")
    return name


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_names() -> list[str]:
    return sorted(_time_zones())


async def set_time_zone(user: User, name: str) -> str:
    """The user's own choice (Account): kept from now on, whatever browser they log in from."""
    name = check_time_zone(name)
    await shielded(User.filter(id=user.id).update(time_zone=name, time_zone_chosen=True))
    user.time_zone, user.time_zone_chosen = name, True
    return name


async def adopt_browser_time_zone(user: User, name: str | None) -> None:
    """At setup, signup and login: use the browser's zone while the user has none of their own.

    "None" is the default UTC never chosen in Account. A zone that is not an IANA name (an old
    browser, a hand-made request) is ignored: this is a convenience, never an error.
    """
    name = (name or "").strip()
    if user.time_zone_chosen or user.time_zone != "UTC" or name == "UTC" or name not in _time_zones():
        return
    await shielded(User.filter(id=user.id, time_zone_chosen=False).update(time_zone=name))
    user.time_zone = name


async def delete_account(herald: Herald, user: User, password: str) -> None:
    """Delete the user and everything that belongs to them (the foreign keys cascade)."""
    _require_password(user, password)
    await delete_user(herald, user)


async def delete_user(herald: Herald, user: User) -> None:
    if user.is_admin and await User.filter(is_admin=True).count() <= 1:
        raise Conflict("This is the only admin account; make another user admin before deleting it.", code="last_admin")
    for hook in herald.hooks.users_ending:  # their printers end as a removal ends them (core/herald.py)
        await hook(user.id)
    await shielded(User.filter(id=user.id).delete())
    log.info("Account %s deleted", user.id)


# --- logging in, throttled -------------------------------------------------------------


def _login_keys(email: str, address: str) -> list[tuple[str, Limit]]:
    """The limiter keys (and limits) a login attempt for ``email`` from ``address`` counts against."""
    # The address comes last and holds no "\x1f", so whatever email is typed from one
    # address, the key names that address: nobody can count failures against another's.
    keys = [(f"login:pair:{email}{GROUP_SEPARATOR}{address}", LOGIN_FAILS_PER_ACCOUNT_AND_ADDRESS),
            (f"login:acct:{email}", LOGIN_FAILS_PER_ACCOUNT)]
    if address:
        keys.append((f"login:addr:{address}", LOGIN_FAILS_PER_ADDRESS))
    return keys


async def lift_login_limits(herald: Herald, email: str) -> None:
    """Forget the failed logins counted against the account ``email``, from every address."""
    email = normalise_email(email)
    await herald.rate_limiter.reset(f"login:acct:{email}")
    await herald.rate_limiter.reset_prefix(f"login:pair:{email}{GROUP_SEPARATOR}")


async def login(herald: Herald, email: str, password: str, *, address: str) -> User | None:
    """Check the credentials, slowing repeated failures.

    Failures count per (account, client address), per client address and, as a much
    higher backstop, per account (see the LOGIN_FAILS_* limits). Raises a 429
    HeraldError (with Retry-After) while any of them is used up; while throttled, the
    password is not even checked.

    Every attempt is counted as a failure *before* the password is checked, and given
    back when it turns out right: checking first and counting after let a burst of
    simultaneous guesses all pass the check while the first ones were still hashing.
    """
    email = normalise_email(email)[:254]
    limiter = herald.rate_limiter
    keys = _login_keys(email, address)
    taken: list[str] = []
    for key, limit in keys:
        wait = await limiter.take(key, limit)
        if wait > 0:
            for earlier in taken:
                await limiter.refund(earlier)
            seconds = max(1, math.ceil(wait))
            raise RateLimited(f"Too many failed logins; try again in {seconds} s or reset your password.",
                              retry_after=seconds)
        taken.append(key)
    user = await authenticate(email, password)
    if user is None:
        log.info("Failed login from %s", address or "unknown address")
        backstop, limit = keys[1]
        if await limiter.retry_after(backstop, limit) > 0:
            log.warning("Failed logins for %r from many addresses reached %d in %d minutes: logins to it "
                        "wait until the window passes or its password is reset", email, limit.count,
                        limit.per // 60)
        return None
    await limiter.reset(keys[0][0])  # this address's failures on this account
    for key, _limit in keys[1:]:
        await limiter.refund(key)  # the backstop and the address's count keep earlier failures
    return user
