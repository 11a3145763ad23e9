"""The Echo device's own time zone, from Alexa's Device Settings API.

``GET {apiEndpoint}/v2/devices/{deviceId}/settings/System.timeZone`` with
``Authorization: Bearer {apiAccessToken}``, both from the request's ``context.System``;
Amazon answers 200 with a JSON string such as ``"Europe/Berlin"``. The base URL is the
request's ``apiEndpoint`` (it differs by region), so Herald never needs a setting for it.

The answer is kept per device (an hour when found, five minutes when Amazon did not
answer), and a lookup waits at most ``timeout`` seconds, so /alexa stays fast: on a miss or
a failure the skill speaks in the account's zone instead.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from appliance.alexa.client import AmazonClient

log = logging.getLogger(__name__)

FOUND_FOR = timedelta(hours=1)
MISSED_FOR = timedelta(minutes=5)


class DeviceTimeZones(AmazonClient):
    def __init__(self, *, timeout: float = 1.0, max_entries: int = 4096,
                 now: Callable[[], datetime] | None = None) -> None:
        super().__init__(timeout)
        self.max_entries = max_entries
        self._now = now or (lambda: datetime.now(UTC))
        self._cache: OrderedDict[str, tuple[str | None, datetime]] = OrderedDict()
        self.lookups = 0  # calls made to the API, for tests and diagnostics

    async def zone_for(self, envelope: dict[str, Any]) -> str | None:
        """The device's IANA zone name, or None (no device, no API token, or no answer in time)."""
        system = (envelope.get("context") or {}).get("System") or {}
        device_id = str(((system.get("device") or {}).get("deviceId")) or "")
        endpoint = str(system.get("apiEndpoint") or "").rstrip("/")
        token = str(system.get("apiAccessToken") or "")
        if not (device_id and endpoint and token):
            return None
        now = self._now()
        cached = self._cache.get(device_id)
        if cached is not None and now < cached[1]:
            self._cache.move_to_end(device_id)
            return cached[0]
        zone = await self._lookup(endpoint, device_id, token)
        self._cache[device_id] = (zone, now + (FOUND_FOR if zone else MISSED_FOR))
        self._cache.move_to_end(device_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return zone

    async def _lookup(self, endpoint: str, device_id: str, token: str) -> str | None:
        # Alexa Settings API reference (developer.amazon.com/docs/smapi/alexa-settings-api-reference.html):
        # GET {apiEndpoint}/v2/devices/{deviceId}/settings/System.timeZone with
        # Authorization: Bearer {apiAccessToken}; 200 with the zone as a JSON string
        # ("America/Los_Angeles"), 204 when there is none, 403 for a token without access.
        url = f"{endpoint}/v2/devices/{quote(device_id, safe='')}/settings/System.timeZone"
        self.lookups += 1
        try:
            async with self.session().get(url, allow_redirects=False, headers={
                    "Authorization": f"Bearer {token}", "Accept": "application/json"}) as response:
                if response.status != 200:
                    log.info("Alexa's settings API answered HTTP %s for the device time zone", response.status)
                    return None
                body = await response.content.read(1024)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("Alexa's settings API did not answer for the device time zone: %r", exc)
            return None
        try:
            zone = json.loads(body)
            ZoneInfo(zone)
        except (ValueError, TypeError, ZoneInfoNotFoundError):
            log.info("Alexa's settings API sent a time zone Herald does not know")
            return None
        return zone

