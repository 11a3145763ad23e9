"""Fetching Amazon's signing certificate: a timeout, a size limit and a bounded cache that
keeps each certificate until it expires."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
from cryptography import x509

from appliance.alexa.client import AmazonClient

MAX_CERT_BYTES = 64 * 1024


class CertFetchError(Exception):
    pass


class CachingCertFetcher(AmazonClient):
    """``await fetcher(url)`` -> PEM bytes. Call ``close()`` when done."""

    def __init__(self, *, timeout: float = 5.0, max_bytes: int = MAX_CERT_BYTES,
                 max_entries: int = 16, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(timeout)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._now = now or (lambda: datetime.now(UTC))
        self._cache: OrderedDict[str, tuple[bytes, datetime]] = OrderedDict()
        self.fetches = 0  # network fetches made, for tests and diagnostics

    async def __call__(self, url: str) -> bytes:
        entry = self._cache.get(url)
        if entry is not None:
            if self._now() < entry[1]:
                self._cache.move_to_end(url)
                return entry[0]
            del self._cache[url]
        pem = await self._download(url)
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise CertFetchError("the certificate URL did not return PEM certificates") from None
        expires = min(cert.not_valid_after_utc for cert in certs)
        self._cache[url] = (pem, expires)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return pem

    async def _download(self, url: str) -> bytes:
        self.fetches += 1
        try:
            async with self.session().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise CertFetchError(f"certificate URL answered HTTP {response.status}")
                if (response.content_length or 0) > self.max_bytes:
                    raise CertFetchError("certificate is larger than allowed")
                data = bytearray()
                async for chunk in response.content.iter_chunked(8192):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise CertFetchError("certificate is larger than allowed")
                return bytes(data)
        except TimeoutError:
            raise CertFetchError("fetching the certificate timed out") from None
        except aiohttp.ClientError as exc:
            raise CertFetchError(f"fetching the certificate failed: {exc}") from None

