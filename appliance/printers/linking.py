"""Linking a printer by the device-authorization flow (RFC 8628).

The plugin asks for a code (``start_link``), the user approves it at /link
(``decide_link``), the plugin polls (``poll_link``) and receives its printer
key. Each key is shown once; when the answer carrying it was lost on the way (a
connection closed under the request, a timeout), the next poll with the same
device code gets a fresh key and the lost one stops working, until the printer
has used its key or the code expires. Device codes are stored as SHA-256 hashes; user codes are
8 letters from an alphabet without vowels or look-alikes, shown as ABCD-EFGH.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from appliance.accounts.models import User
from appliance.core.db import shielded
from appliance.core.errors import Conflict, HeraldError, Invalid, NotFound, Unavailable
from appliance.core.herald import Herald
from appliance.core.ratelimit import Limit
from appliance.core.secrets import PRINTER_KEY_PREFIX, new_token, token_hash
from appliance.printers.manage import clean_printer_name
from appliance.printers.models import LinkRequest, Printer
from appliance.printers.schemas import LinkStarted
from appliance.printers.state import printer_state

log = logging.getLogger(__name__)

# RFC 8628 §6.1: 20 consonants, no vowels (no words), none that look alike.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
LINK_EXPIRES_IN = 900  # seconds a code stays valid
POLL_INTERVAL = 5  # seconds the plugin waits between polls

START_LIMIT = Limit(count=20, per=3600)  # link starts per client address
# RFC 8628 §5.1: user codes have ~34.6 bits; these limits make guessing hopeless.
CODE_LIMIT_PER_USER = Limit(count=10, per=600)
CODE_LIMIT_PER_ADDRESS = Limit(count=30, per=600)


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalise_user_code(text: str | None) -> str | None:
    """Upper-case, drop dashes and spaces; None when it cannot be a user code."""
    code = "".join(ch for ch in (text or "").upper() if ch.isalnum())
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


async def start_link(herald: Herald, printer_name: str, client_address: str) -> LinkStarted:
    await herald.rate_limiter.hit(f"link-start:{client_address}", START_LIMIT,
                                  "Too many printers asked to link from this address.")
    name = clean_printer_name(printer_name)
    device_code = new_token()
    now = herald.clock.now()
    for _ in range(5):
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        try:
            await shielded(LinkRequest.create(
                device_code_hash=token_hash(device_code), user_code=user_code, printer_name=name,
                client_address=client_address[:64], expires_at=now + timedelta(seconds=LINK_EXPIRES_IN),
            ))
            break
        except IntegrityError:
            continue  # the user code is taken by a pending request: draw another
    else:
        raise Unavailable("Could not allocate a user code; try again.", code="busy")
    base = herald.settings.base_url
    shown = format_user_code(user_code)
    # The same model the API documents in its OpenAPI description.
    return LinkStarted(
        device_code=device_code, user_code=shown, verification_uri=f"{base}/link",
        verification_uri_complete=f"{base}/link?user_code={shown}",
        expires_in=LINK_EXPIRES_IN, interval=POLL_INTERVAL,
    )


def _poll_error(code: str, message: str) -> HeraldError:
    return Invalid(message, code=code)


async def poll_link(herald: Herald, device_code: str) -> dict:
    """The plugin's poll: raises the RFC 8628 errors, or returns the key once."""
    now = herald.clock.now()
    request = await LinkRequest.get_or_none(device_code_hash=token_hash(device_code))
    if request is not None and request.completed_at is not None and request.expires_at > now:
        if await _key_lost(herald, request):
            # The plugin polls again after the key went out: its answer never arrived.
            log.info("link request %s: the printer key went out but was never used; issuing a new one", request.id)
            return await shielded(_issue_key(herald, request.id, again=True))
    if request is None or request.completed_at is not None:
        raise _poll_error("expired_token", "This device code is unknown, expired or already used; start linking again.")
    if request.expires_at <= now:
        raise _poll_error("expired_token", "The code expired before it was approved; start linking again.")
    if request.denied:
        raise _poll_error("access_denied", "The link request was denied.")
    too_soon = (request.last_polled_at is not None
                and (now - request.last_polled_at).total_seconds() < POLL_INTERVAL)
    await shielded(LinkRequest.filter(id=request.id).update(last_polled_at=now))
    if too_soon:
        raise _poll_error("slow_down", f"Poll at most every {POLL_INTERVAL} seconds.")
    if request.approved_by_id is None:
        raise _poll_error("authorization_pending", "Waiting for the owner to approve the printer.")
    return await shielded(_issue_key(herald, request.id))


async def _key_lost(herald: Herald, request: LinkRequest) -> bool:
    """Whether the key this request handed out is still the printer's and was never used."""
    if request.printer_id is None:
        return False
    printer = await Printer.get_or_none(id=request.printer_id)
    if printer is None or printer.key_hash is None or printer.linked_at != request.completed_at:
        return False  # unlinked, removed, or given another key since
    live = printer_state(herald).live.get(printer.id)
    seen = max([t for t in (printer.last_seen_at, live.seen_at if live else None) if t is not None], default=None)
    return seen is None or (request.completed_at is not None and seen < request.completed_at)


async def _issue_key(herald: Herald, request_id: int, *, again: bool = False) -> dict:
    key = new_token(PRINTER_KEY_PREFIX)
    now = herald.clock.now()
    async with in_transaction() as conn:
        # Claim the request: only one poll can hand out the key (or, again, replace a lost one).
        claim = LinkRequest.filter(id=request_id)
        if not again:
            claim = claim.filter(completed_at__isnull=True)
        claimed = await claim.using_db(conn).update(completed_at=now)
        if not claimed:
            raise _poll_error("expired_token", "This device code was already used.")
        request = await LinkRequest.get(id=request_id, using_db=conn)
        printer = None
        if request.printer_id is not None:
            printer = await Printer.filter(id=request.printer_id, owner_id=request.approved_by_id
                                           ).using_db(conn).first()
        if printer is None:
            printer = await Printer.create(
                id=str(uuid.uuid4()), owner_id=request.approved_by_id, name=request.printer_name,
                key_hash=token_hash(key), linked_at=now, changed_at=now, using_db=conn)
        else:
            await Printer.filter(id=printer.id).using_db(conn).update(
                key_hash=token_hash(key), linked_at=now, changed_at=now)
        await LinkRequest.filter(id=request_id).using_db(conn).update(printer_id=printer.id)
    printer_state(herald).forget(printer.id)
    return {"printer_id": printer.id, "printer_key": key}


async def find_pending(herald: Herald, user: User, client_address: str, user_code: str | None) -> LinkRequest | None:
    """The pending request with this user code; each look-up counts against the guessing limits."""
    limiter = herald.rate_limiter
    message = "Too many code attempts."
    await limiter.hit(f"link-code-user:{user.id}", CODE_LIMIT_PER_USER, message)
    await limiter.hit(f"link-code-addr:{client_address}", CODE_LIMIT_PER_ADDRESS, message)
    code = normalise_user_code(user_code)
    if code is None:
        return None
    request = await LinkRequest.get_or_none(user_code=code)
    if (request is None or request.expires_at <= herald.clock.now() or request.denied
            or request.approved_by_id is not None):
        return None
    return request


async def decide_link(herald: Herald, user: User, client_address: str, user_code: str, *, approve: bool,
                      relink_printer_id: str | None = None) -> LinkRequest:
    request = await find_pending(herald, user, client_address, user_code)
    if request is None:
        raise Invalid("This code is unknown or expired; check it on the printer.", field="user_code", code="invalid_code")
    changes: dict = {}
    if approve:
        changes["approved_by_id"] = user.id
        if relink_printer_id:
            printer = await Printer.get_or_none(id=relink_printer_id, owner_id=user.id)
            if printer is None:
                raise NotFound("No such printer.")
            changes["printer_id"] = printer.id
    else:
        changes["denied"] = True
    # Only a still-undecided request changes, so a code can be decided once.
    updated = await shielded(LinkRequest.filter(id=request.id, approved_by_id__isnull=True, denied=False)
                             .update(**changes))
    if not updated:
        raise Conflict("This request was already approved or denied.", code="already_decided")
    await request.refresh_from_db()
    return request


async def linked_name(request: LinkRequest) -> str:
    """The name the printer has once this request is linked: a printer linked again keeps its
    own name (the plugin's name is only a suggestion), a new printer takes the suggestion."""
    if request.printer_id is not None:
        printer = await Printer.get_or_none(id=request.printer_id)
        if printer is not None:
            return printer.name
    return request.printer_name


async def purge_link_requests(herald: Herald) -> int:
    """Delete link requests that expired a day ago (their codes are dead anyway)."""
    cutoff = herald.clock.now() - timedelta(days=1)
    return await shielded(LinkRequest.filter(expires_at__lt=cutoff).delete())
