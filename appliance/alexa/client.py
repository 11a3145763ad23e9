"""What Herald's calls to Amazon share: one aiohttp session, opened on first use with a total
timeout, and closed when the app stops; a bounded cache whose size tests can read; and the
worker loop of the durable outbound work (notifications, reminder messages)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from tortoise import Tortoise

from appliance.core.db import shielded

log = logging.getLogger(__name__)


async def work_rounds(name: str, one_round: Callable[[], Awaitable[int]], wake: asyncio.Event,
                      every: float) -> None:
    """Background task: run rounds while they find work, then wait to be woken or ``every`` s."""
    while True:
        try:
            while await one_round():
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be away for a moment; the rows wait
            log.exception("%s: a round failed", name)
        try:
            await asyncio.wait_for(wake.wait(), timeout=every)
        except TimeoutError:
            pass
        wake.clear()


async def claim_rows(statement: str, values: list[Any]) -> list[dict[str, Any]]:
    """Run a claiming UPDATE ... RETURNING; the rows claimed, oldest first."""
    # execute_query_dict: Tortoise's execute_query drops RETURNING rows of an UPDATE on asyncpg.
    rows = await shielded(Tortoise.get_connection("default").execute_query_dict(statement, values))
    return sorted(rows, key=lambda r: r["id"])


class AmazonClient:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def __len__(self) -> int:
        return len(self._cache)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
