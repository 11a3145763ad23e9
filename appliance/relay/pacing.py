"""The relay's limits per connection, applied as streams run (apps/relay_limits.py declares them).

Streams at once and the request body size are checked by the gateway before and while a request
goes through; here are the two that act while bytes move: the bandwidth cap (one token bucket per
connection and direction, shared by all its streams) and the idle timeout (a stream that moves
nothing either way for that long is reset).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from appliance.relay.tunnel import Stream

BURST_SECONDS = 0.25  # a bucket holds a quarter second of its rate (at least one frame)


class Pace:
    """A token bucket: ``take(n)`` returns once ``n`` bytes fit the rate (``rate`` 0: no cap)."""

    def __init__(self, rate: int, *, now: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.rate = rate
        self.burst = max(float(rate) * BURST_SECONDS, 65536.0)
        self.allowance = self.burst
        self.stamp: float | None = None
        self._now = now  # the event loop's clock unless a test hands in its own
        self._sleep = sleep

    async def take(self, n: int) -> None:
        if self.rate <= 0 or n <= 0:
            return
        now = self._now() if self._now is not None else asyncio.get_running_loop().time()
        if self.stamp is not None:
            self.allowance = min(self.burst, self.allowance + (now - self.stamp) * self.rate)
        self.stamp = now
        self.allowance -= n
        if self.allowance < 0:
            await self._sleep(-self.allowance / self.rate)


class Activity:
    """When a stream last moved a byte; ``watch`` resets it after ``idle`` seconds of nothing."""

    def __init__(self) -> None:
        self.last = asyncio.get_running_loop().time()

    def touch(self) -> None:
        self.last = asyncio.get_running_loop().time()

    async def watch(self, stream: Stream, idle: float) -> None:
        loop = asyncio.get_running_loop()
        while stream.reset_by is None:
            left = self.last + idle - loop.time()
            if left <= 0:
                with contextlib.suppress(Exception):
                    await stream.reset("idle", f"nothing moved for {idle:g} s (HERALD_RELAY_IDLE_SECONDS)")
                return
            await asyncio.sleep(min(left, 5.0))
