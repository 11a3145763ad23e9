"""The real certificate fetcher against a local HTTP server: timeout, size limit, expiring bounded cache."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp import web

from appliance.alexa.certificates import CachingCertFetcher, CertFetchError
from tests.support.alexa import NOW, certificate_server, make_pki


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
async def cert_server(pki):
    hits: dict[str, int] = {}
    release = asyncio.Event()

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits[name] = hits.get(name, 0) + 1
        if name == "slow.pem":
            await asyncio.wait_for(release.wait(), 10)
        if name == "huge.pem":
            response = web.StreamResponse()  # no Content-Length: the limit must hold while streaming
            await response.prepare(request)
            for _ in range(40):
                await response.write(b"A" * 4096)
            return response
        if name == "text.pem":
            return web.Response(text="this is not a certificate")
        if name == "missing.pem":
            return web.Response(status=404)
        if name == "expired.pem":
            return web.Response(body=pki.expired.chain_pem)
        return web.Response(body=pki.good.chain_pem)

    async with certificate_server(serve) as base:
        try:
            yield base, hits
        finally:
            release.set()  # before the server stops, so the slow answer ends


class MovingNow:
    def __init__(self) -> None:
        self.value = NOW

    def __call__(self):
        return self.value


async def test_a_certificate_is_fetched_once_and_served_from_the_cache(cert_server, pki):
    base, hits = cert_server
    fetcher = CachingCertFetcher(now=MovingNow())
    try:
        for _ in range(3):
            assert await fetcher(base + "good.pem") == pki.good.chain_pem
        assert hits["good.pem"] == 1
    finally:
        await fetcher.close()


async def test_the_cache_entry_expires_with_the_certificate(cert_server):
    base, hits = cert_server
    now = MovingNow()
    fetcher = CachingCertFetcher(now=now)
    try:
        await fetcher(base + "good.pem")
        now.value = NOW + timedelta(days=299)  # the leaf is valid for 300 days from NOW
        await fetcher(base + "good.pem")
        assert hits["good.pem"] == 1
        now.value = NOW + timedelta(days=301)
        await fetcher(base + "good.pem")
        assert hits["good.pem"] == 2
        # an already expired certificate is never served from the cache
        await fetcher(base + "expired.pem")
        await fetcher(base + "expired.pem")
        assert hits["expired.pem"] == 2
    finally:
        await fetcher.close()


async def test_the_cache_is_bounded(cert_server):
    base, hits = cert_server
    fetcher = CachingCertFetcher(now=MovingNow(), max_entries=2)
    try:
        for name in ("a.pem", "b.pem", "c.pem"):
            await fetcher(base + name)
        assert len(fetcher) == 2
        await fetcher(base + "a.pem")  # the oldest was dropped: fetched again
        assert hits["a.pem"] == 2
        await fetcher(base + "c.pem")  # still cached
        assert hits["c.pem"] == 1
    finally:
        await fetcher.close()


async def test_a_slow_server_times_out(cert_server):
    base, _ = cert_server
    fetcher = CachingCertFetcher(timeout=0.3, now=MovingNow())
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(CertFetchError, match="timed out"):
            await fetcher(base + "slow.pem")
        assert loop.time() - started < 2
    finally:
        await fetcher.close()


async def test_an_oversized_answer_is_refused(cert_server):
    base, _ = cert_server
    fetcher = CachingCertFetcher(max_bytes=64 * 1024, now=MovingNow())
    try:
        with pytest.raises(CertFetchError, match="larger than allowed"):
            await fetcher(base + "huge.pem")
    finally:
        await fetcher.close()


async def test_errors_and_non_pem_answers_are_refused(cert_server):
    base, _ = cert_server
    fetcher = CachingCertFetcher(now=MovingNow())
    try:
        with pytest.raises(CertFetchError, match="HTTP 404"):
            await fetcher(base + "missing.pem")
        with pytest.raises(CertFetchError, match="PEM"):
            await fetcher(base + "text.pem")
        assert len(fetcher) == 0
    finally:
        await fetcher.close()
