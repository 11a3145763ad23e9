"""What Herald's calls to Amazon share: one aiohttp session, opened on first use with a total
timeout, and closed when the app stops; plus a bounded cache whose size tests can read."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import aiohttp


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
