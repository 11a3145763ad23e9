"""Printer keys: which printer an ``hpk_`` key opens, answered from a per-process cache.

A key stops working in this process at once when changed here, and in every other
process within ``REVALIDATE_EVERY`` seconds: each process looks for printers whose
``changed_at`` moved since its last look and forgets them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from appliance.core.errors import Unauthenticated
from appliance.core.herald import Herald
from appliance.core.secrets import PRINTER_KEY_PREFIX, token_hash
from appliance.printers.models import Printer
from appliance.printers.state import CachedPrinter, printer_state

log = logging.getLogger(__name__)

# Every process forgets cached printers changed elsewhere at least this often,
# so a rotated or revoked key stops working everywhere within 5 seconds.
REVALIDATE_EVERY = 1.0
_REVALIDATE_OVERLAP = timedelta(seconds=3)
# Unknown keys are remembered briefly, so a flood of bad keys costs no database reads.
_UNKNOWN_KEY_TTL = 2.0
_UNKNOWN_KEY_MAX = 10_000
_BEARER_ERROR = 'Bearer error="invalid_token"'


async def printer_for_key(herald: Herald, token: str) -> CachedPrinter:
    """The printer a ``hpk_`` key opens, or a 401."""
    if not token.startswith(PRINTER_KEY_PREFIX):
        raise Unauthenticated("This endpoint takes a printer key (hpk_...).", challenge=_BEARER_ERROR, code="invalid_token")
    state = printer_state(herald)
    digest = token_hash(token)
    cached = state.by_key.get(digest)
    if cached is not None:
        return cached
    now = herald.clock.monotonic()
    expiry = state.unknown_keys.get(digest)
    if expiry is None or expiry <= now:
        rows = await Printer.filter(key_hash=digest).values("id", "owner_id", "name", "online")
        if rows:
            row = rows[0]
            cached = CachedPrinter(id=row["id"], owner_id=row["owner_id"], name=row["name"],
                                   online=row["online"])
            state.forget(cached.id)
            state.by_key[digest] = cached
            state.key_of[cached.id] = digest
            state.unknown_keys.pop(digest, None)
            return cached
        if len(state.unknown_keys) >= _UNKNOWN_KEY_MAX:
            state.unknown_keys.clear()
        state.unknown_keys[digest] = now + _UNKNOWN_KEY_TTL
    raise Unauthenticated("The printer key is unknown or was revoked; link the printer again.", challenge=_BEARER_ERROR, code="invalid_token")


PRELOAD_MAX = 50_000


async def preload_keys(herald: Herald) -> int:
    """Fill the key cache at start, so the first check-in of each printer costs no query."""
    state = printer_state(herald)
    rows = await (Printer.filter(key_hash__not_isnull=True).order_by("-last_seen_at").limit(PRELOAD_MAX)
                  .values("id", "owner_id", "name", "online", "key_hash"))
    for row in rows:
        if row["id"] not in state.key_of:
            state.by_key[row["key_hash"]] = CachedPrinter(id=row["id"], owner_id=row["owner_id"],
                                                          name=row["name"], online=row["online"])
            state.key_of[row["id"]] = row["key_hash"]
    return len(rows)


async def revalidate_cache(herald: Herald) -> int:
    """Forget cached printers whose key, name or online flag changed in any process."""
    state = printer_state(herald)
    now = herald.clock.now()
    since = (state.last_revalidated or state.started_at) - _REVALIDATE_OVERLAP
    # tortoise types values_list(flat=True) as tuples; it gives the values themselves.
    changed: list[str] = await Printer.filter(  # type: ignore[assignment]
        changed_at__gte=since).values_list("id", flat=True)
    for printer_id in changed:
        state.forget(printer_id)
    state.last_revalidated = now
    return len(changed)


async def cache_revalidator(herald: Herald) -> None:
    """Background task: forget printers changed by any process, every REVALIDATE_EVERY seconds."""
    while True:
        await asyncio.sleep(REVALIDATE_EVERY)
        try:
            await revalidate_cache(herald)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("checking for changed printer keys failed; will retry")
