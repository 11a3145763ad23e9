"""Rate limits (sliding window), answering 429 with Retry-After.

A limit is "at most ``count`` hits per ``per`` seconds" on a key (``login:addr:<ip>``,
``mail:acct:<email>``, ...). A key may hit while fewer than ``count`` of its hits
are younger than ``per`` seconds; otherwise Retry-After says when the oldest of
them leaves the window.

Two implementations with one (async) interface, chosen by ``rate_limiter_for``:

- ``RateLimiter`` keeps the hits in this process's memory. SQLite installs run
  one process by design, so that is exact there, and costs no database work.
- ``SharedRateLimiter`` keeps them in PostgreSQL (table ``rate_limits``), so
  that every process of a multi-worker install (``HERALD_WORKERS`` > 1) counts
  against the same windows: five wrong passwords are five whichever worker
  answered them, not five per worker.

How the shared limiter stores hits, and why: one row per key holding the
timestamps of its hits still in the window (a JSON array, at most ``count``
long for ``hit``). A hit is a single ``INSERT ... ON CONFLICT DO UPDATE``:
PostgreSQL locks the key's row and re-reads its newest version before the
conditional update, so two processes hitting one key at once are counted one
after the other and the limit holds exactly, in one round trip (a refused hit
reads the row back in the same statement to compute Retry-After, and reads it
again only when another process's hit, committed meanwhile, made the
difference). That keeps the in-memory limiter's sliding-window semantics exactly, which a fixed window
(up to twice the limit across a boundary) or GCRA (a 5-per-15-minutes limit
would let one more try through every 3 minutes) would not. A row per hit
instead would need a lock or a second statement to count concurrent hits
correctly. Timestamps are the clock's wall time in epoch seconds, the time all
processes share (the in-memory limiter uses the monotonic clock), so servers on
several hosts need synchronised clocks, as NTP keeps them. The table is
UNLOGGED: it skips the write-ahead log, and a database crash merely forgets the
current windows.

Keys name people (email addresses) and client addresses, so the table must not
become a log of who tried to log in from where: a key is stored only as its
HMAC-SHA256 under a key derived from the data directory's ``secret.key``
(which every process shares already, to decrypt the secrets it keeps). A
plain SHA-256 would not do: every IPv4 address, and any list of known email
addresses, can be hashed and matched in minutes.

``reset_prefix`` forgets a group of keys: the part of a key up to and including
its last ``GROUP_SEPARATOR`` names its group (``login:pair:<email>\\x1f<address>``
is in group ``login:pair:<email>\\x1f``). The shared limiter stores the group's
HMAC beside the key's, so one ``DELETE`` lifts all of an account's per-address
login limits without the table holding either in the clear.

Expired rows (whose newest hit has left the window) are deleted by a periodic
job, ``rate-limit-purge``, which runs hourly in one process at a time under a
lease (appliance.core.leases); rows left between runs are ignored by every
read, since only hits inside the window count.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from tortoise import Tortoise

from appliance.core.clock import Clock
from appliance.core.db import shielded
from appliance.core.errors import RateLimited
from appliance.core.secrets import SecretBox
from appliance.core.settings import Settings

GROUP_SEPARATOR = "\x1f"
PURGE_EVERY = 3600.0  # seconds between purges of expired shared rows
DEFAULT_MESSAGE = "Too many requests; try again later."


@dataclass(frozen=True)
class Limit:
    count: int  # at most this many hits
    per: float  # per this many seconds


def rate_limited(message: str, wait: float) -> RateLimited:
    """The error for a caller who must wait ``wait`` seconds (rounded up, at least 1)."""
    seconds = max(1, math.ceil(wait))
    return RateLimited(f"{message} Retry in {seconds} s.", retry_after=seconds)


def key_group(key: str) -> str | None:
    """The group ``reset_prefix`` lifts ``key`` with: its text up to its last GROUP_SEPARATOR."""
    cut = key.rfind(GROUP_SEPARATOR)
    return key[:cut + 1] if cut >= 0 else None


def _check_group(prefix: str) -> None:
    if not prefix.endswith(GROUP_SEPARATOR):
        raise ValueError("reset_prefix takes a key group, which ends with GROUP_SEPARATOR")


class RateLimiterBase(ABC):
    """What both limiters share; each stores hits its own way (``_take``)."""

    async def hit(self, key: str, limit: Limit, message: str = DEFAULT_MESSAGE) -> None:
        """Count a hit on ``key``, or raise RateLimited (nothing counted) when it is over ``limit``."""
        wait = await self._take(key, limit)
        if wait > 0:
            raise rate_limited(message, wait)

    async def take(self, key: str, limit: Limit) -> float:
        """Record a hit if ``key`` is under ``limit`` and return 0, else the seconds to wait
        (nothing recorded). Atomic: of many callers at once, at most ``limit.count`` get 0."""
        return await self._take(key, limit)

    @abstractmethod
    async def retry_after(self, key: str, limit: Limit) -> float:
        """Seconds until ``key`` may hit again (0 when it may now)."""

    @abstractmethod
    async def longest_wait(self, checks: Iterable[tuple[str, Limit]]) -> float:
        """The longest ``retry_after`` of several (key, limit) pairs."""

    @abstractmethod
    async def record(self, key: str, limit: Limit) -> float:
        """Count a hit whatever the limit says; returns the wait the key now has (0 if none)."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget every hit of ``key``."""

    @abstractmethod
    async def refund(self, key: str) -> None:
        """Take back one hit of ``key`` (the newest): for a hit taken before knowing it counts."""

    @abstractmethod
    async def reset_prefix(self, prefix: str) -> None:
        """Forget every key of the group ``prefix`` (all of one account's per-address limits)."""

    @abstractmethod
    async def _take(self, key: str, limit: Limit) -> float:
        """The atomic step behind ``take``."""


class RateLimiter(RateLimiterBase):
    """Counts hits per key in this process's memory (the limiter for SQLite installs)."""

    def __init__(self, clock: Clock, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    async def retry_after(self, key: str, limit: Limit) -> float:
        """Seconds until ``key`` may hit again (0 when it may now)."""
        return self._retry_after(key, limit)

    async def longest_wait(self, checks: Iterable[tuple[str, Limit]]) -> float:
        """The longest ``retry_after`` of several (key, limit) pairs."""
        return max((self._retry_after(key, limit) for key, limit in checks), default=0.0)

    async def record(self, key: str, limit: Limit) -> float:
        """Count a hit whatever the limit says; returns the wait the key now has (0 if none)."""
        self._record(key)
        return self._retry_after(key, limit)

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    async def refund(self, key: str) -> None:
        """Take back one hit of ``key`` (the newest): for a hit taken before knowing it counts."""
        hits = self._hits.get(key)
        if hits:
            hits.pop()

    async def reset_prefix(self, prefix: str) -> None:
        """Forget every key of the group ``prefix`` (all of one account's per-address login limits)."""
        _check_group(prefix)
        for key in [key for key in self._hits if key_group(key) == prefix]:
            del self._hits[key]

    async def _take(self, key: str, limit: Limit) -> float:
        wait = self._retry_after(key, limit)
        if wait <= 0:
            self._record(key)
        return wait

    def _retry_after(self, key: str, limit: Limit) -> float:
        now = self._clock.monotonic()
        hits = self._hits.get(key)
        if not hits:
            return 0.0
        while hits and hits[0] <= now - limit.per:
            hits.popleft()
        if len(hits) < limit.count:
            return 0.0
        return hits[0] + limit.per - now

    def _record(self, key: str) -> None:
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._evict()
        self._hits.setdefault(key, deque()).append(self._clock.monotonic())

    def _evict(self) -> None:
        # Drop the keys whose newest hit is oldest; keeps memory bounded under a flood of keys.
        by_age = sorted(self._hits.items(), key=lambda item: item[1][-1] if item[1] else 0.0)
        for key, _ in by_age[: max(1, len(by_age) // 10)]:
            del self._hits[key]


# The hits of a row still in the window of a limit: $3 is now, $4 the window (seconds).
_LIVE = "jsonb_path_query_array(r.hits, '$[*] ? (@ > $since)', jsonb_build_object('since', $3::float8 - $4::float8))"
_UPSERT = f"""
    INSERT INTO rate_limits AS r (key_hash, group_hash, hits, expires_at)
    VALUES ($1, $2, jsonb_build_array($3::float8), $3::float8 + $4::float8)
    ON CONFLICT (key_hash) DO UPDATE
        SET hits = {_LIVE} || jsonb_build_array($3::float8), expires_at = $3::float8 + $4::float8"""
# A hit: the update happens only while fewer than $5 hits are live. A refused hit gets the
# row's hits back (as the statement found them) to compute Retry-After from.
_HIT_SQL = f"""
    WITH taken AS ({_UPSERT}
        WHERE jsonb_array_length({_LIVE}) < $5
        RETURNING 1)
    SELECT TRUE AS taken, NULL::jsonb AS hits FROM taken
    UNION ALL
    SELECT FALSE, hits FROM rate_limits WHERE key_hash = $1 AND NOT EXISTS (SELECT 1 FROM taken)"""
_RECORD_SQL = _UPSERT + " RETURNING r.hits"


def _wait(hits: Iterable[float], limit: Limit, now: float) -> float:
    """Seconds until fewer than ``limit.count`` of ``hits`` (epoch seconds) are in the window."""
    live = sorted(hit for hit in hits if hit > now - limit.per)
    if len(live) < limit.count:
        return 0.0
    return live[-limit.count] + limit.per - now


def _hits(value) -> list[float]:
    # asyncpg hands jsonb over as text unless a codec is set; accept either.
    return json.loads(value) if isinstance(value, str) else list(value or ())


class SharedRateLimiter(RateLimiterBase):
    """Counts hits per key in PostgreSQL, shared by every process (see the module docstring)."""

    def __init__(self, clock: Clock, secret: bytes) -> None:
        self._clock = clock
        self._secret = secret

    def _digest(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def _ids(self, key: str) -> tuple[str, str | None]:
        group = key_group(key)
        return self._digest(key), None if group is None else self._digest(group)

    def _now(self) -> float:
        return self._clock.now().timestamp()

    @staticmethod
    async def _query(sql: str, *params) -> list[dict]:
        return await Tortoise.get_connection("default").execute_query_dict(sql, list(params))

    async def retry_after(self, key: str, limit: Limit) -> float:
        """Seconds until ``key`` may hit again (0 when it may now)."""
        return await self.longest_wait([(key, limit)])

    async def longest_wait(self, checks: Iterable[tuple[str, Limit]]) -> float:
        """The longest ``retry_after`` of several (key, limit) pairs, read in one query."""
        limits = {self._digest(key): limit for key, limit in checks}
        rows = await self._query("SELECT key_hash, hits FROM rate_limits WHERE key_hash = ANY($1::varchar[])",
                                 list(limits))
        now = self._now()
        return max((_wait(_hits(row["hits"]), limits[row["key_hash"]], now) for row in rows), default=0.0)

    async def record(self, key: str, limit: Limit) -> float:
        """Count a hit whatever the limit says; returns the wait the key now has (0 if none)."""
        now = self._now()
        rows = await shielded(self._query(_RECORD_SQL, *self._ids(key), now, float(limit.per)))
        return _wait(_hits(rows[0]["hits"]), limit, now)

    async def reset(self, key: str) -> None:
        await shielded(self._query("DELETE FROM rate_limits WHERE key_hash = $1", self._digest(key)))

    async def refund(self, key: str) -> None:
        """Take back one hit of ``key`` (the newest): for a hit taken before knowing it counts."""
        # jsonb minus -1 drops an array's last element; hits are appended in time order.
        await shielded(self._query("UPDATE rate_limits SET hits = hits - -1 WHERE key_hash = $1",
                                   self._digest(key)))

    async def reset_prefix(self, prefix: str) -> None:
        """Forget every key of the group ``prefix`` (all of one account's per-address login limits)."""
        _check_group(prefix)
        await shielded(self._query("DELETE FROM rate_limits WHERE group_hash = $1", self._digest(prefix)))

    async def purge(self) -> int:
        """Delete the rows whose newest hit has left its window; returns how many went."""
        client = Tortoise.get_connection("default")
        count, _rows = await client.execute_query("DELETE FROM rate_limits WHERE expires_at <= $1",
                                                  [self._now()])
        return count

    async def _take(self, key: str, limit: Limit) -> float:
        now = self._now()
        rows = await shielded(self._query(_HIT_SQL, *self._ids(key), now, float(limit.per), limit.count))
        if rows and rows[0]["taken"]:
            return 0.0
        wait = _wait(_hits(rows[0]["hits"]), limit, now) if rows else 0.0
        if wait <= 0:
            # Refused because of hits another process committed after this statement's
            # snapshot was taken: a fresh read sees them.
            wait = await self.retry_after(key, limit)
        return wait or 1.0


def rate_limiter_for(settings: Settings, clock: Clock, secret_box: SecretBox) -> RateLimiterBase:
    """The limiter for this install: in memory on SQLite, shared through PostgreSQL otherwise.

    The shared one's hourly purge of expired rows is a background task that create_app
    runs under a lease (``SharedRateLimiter.purge``).
    """
    if settings.is_sqlite:
        return RateLimiter(clock)
    return SharedRateLimiter(clock, secret_box.derive_key("rate-limit keys"))
