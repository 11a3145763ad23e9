"""In-process rate limits (sliding window), answering 429 with Retry-After.

Limits are per process: with several processes each enforces its own window,
so the effective limit is at most N times the configured one. That bound is
acceptable for abuse protection (what matters is that an anonymous caller cannot
fill the database or a mailbox without bound).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from appliance.clock import Clock
from appliance.errors import APIError


@dataclass(frozen=True)
class Limit:
    count: int  # at most this many hits
    per: float  # per this many seconds


class RateLimiter:
    """Counts hits per key; ``hit()`` raises a 429 APIError when a key is over its limit."""

    def __init__(self, clock: Clock, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    def retry_after(self, key: str, limit: Limit) -> float:
        """Seconds until ``key`` may hit again (0 when it may now)."""
        now = self._clock.monotonic()
        hits = self._hits.get(key)
        if not hits:
            return 0.0
        while hits and hits[0] <= now - limit.per:
            hits.popleft()
        if len(hits) < limit.count:
            return 0.0
        return hits[0] + limit.per - now

    def hit(self, key: str, limit: Limit, message: str = "Too many requests; try again later.") -> None:
        wait = self.retry_after(key, limit)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise APIError(429, "rate_limited", f"{message} Retry in {seconds} s.",
                           headers={"Retry-After": str(seconds)}, extra={"retry_after": seconds})
        self.record(key)

    def record(self, key: str) -> None:
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._evict()
        self._hits.setdefault(key, deque()).append(self._clock.monotonic())

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    def reset_prefix(self, prefix: str) -> None:
        """Forget every key starting with ``prefix`` (all of one account's login limits, say)."""
        for key in [key for key in self._hits if key.startswith(prefix)]:
            del self._hits[key]

    def _evict(self) -> None:
        # Drop the keys whose newest hit is oldest; keeps memory bounded under a flood of keys.
        by_age = sorted(self._hits.items(), key=lambda item: item[1][-1] if item[1] else 0.0)
        for key, _ in by_age[: max(1, len(by_age) // 10)]:
            del self._hits[key]
