"""The probe's Alexa findings: the certificate URL as fetched, the fetch after the cheap checks,
remembered failures, bounded fetches, and the skill id with verification off."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from appliance.alexa.verification import (
    MAX_CONCURRENT_FETCHES,
    AlexaVerificationError,
    RequestVerifier,
    check_cert_url,
)
from tests.appliance.alexa.test_alexa_endpoint import (  # noqa: F401
    _owner_with_printer,
    _post,
    app_deps,
    fetcher,
    own_app,
    pki,
    post_served,
    settings,
)
from tests.support.alexa import CERT_URL, NOW, SKILL_ID, body_of, envelope, signed_headers, speech


@pytest.mark.parametrize("written, fetched", [
    ("https://s3.amazonaws.com/echo.api/other/..%2Fecho-api-cert-test.pem", CERT_URL),
    ("https://s3.amazonaws.com/echo.api/%2E%2E/echo.api/echo-api-cert-test.pem", CERT_URL),
    ("https://S3.amazonaws.com:443/echo.api/./echo-api-cert-test.pem?x=1#y", CERT_URL),
    ("https://s3.amazonaws.com/echo.api/a%20b.pem", "https://s3.amazonaws.com/echo.api/a%20b.pem"),
])
def test_the_url_to_fetch_is_the_url_checked(written, fetched):
    assert check_cert_url(written) == fetched


@pytest.mark.parametrize("url", [
    "https://s3.amazonaws.com/echo.api/x/..%2F..%2Fother/cert.pem",
    "https://s3.amazonaws.com/echo.api/..%5C..%5Cother/cert.pem",
    "https://s3.amazonaws.com/echo.api/%0A/cert.pem",
])
def test_paths_that_leave_echo_api_in_any_spelling_are_refused(url):
    with pytest.raises(AlexaVerificationError):
        check_cert_url(url)


async def test_a_dot_dot_url_fetches_the_normalised_path_not_the_written_one(client, pki, fetcher):  # noqa: F811
    await _owner_with_printer()
    written = "https://s3.amazonaws.com/echo.api/other/..%2Fecho-api-cert-test.pem"
    response = await post_served(client, pki, written, pki.untrusted.chain_pem)  # what the written path serves
    assert response.status_code == 200
    assert fetcher.calls == [CERT_URL]


@pytest.mark.parametrize("change", [
    {"timestamp": NOW - timedelta(seconds=600)},
    {"skill_id": "amzn1.ask.skill.someone-else"},
])
async def test_the_cheap_checks_come_before_any_fetch(client, pki, fetcher, change):  # noqa: F811
    body = body_of(envelope(intent="ListPrintersIntent", **change))
    for number in range(20):
        url = f"https://s3.amazonaws.com/echo.api/new-{number}.pem"
        response = await _post(client, body, signed_headers(body, pki.good, url=url))
        assert response.status_code == 400
    assert fetcher.calls == []


async def test_a_failed_url_is_remembered_not_fetched_again(client, pki, fetcher):  # noqa: F811
    url = "https://s3.amazonaws.com/echo.api/missing.pem"
    for _ in range(10):
        body = body_of(envelope(intent="ListPrintersIntent"))
        response = await _post(client, body, signed_headers(body, pki.good, url=url))
        assert response.status_code == 400
        assert "could not be fetched" in (await response.get_json())["message"]
    assert fetcher.calls == [url]


async def test_fetches_at_once_are_bounded():
    """Requests naming new URLs wait for a fetch slot: never more than MAX_CONCURRENT_FETCHES run."""
    active = 0
    most = 0
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow_fetch(url: str) -> bytes:
        nonlocal active, most
        active += 1
        most = max(most, active)
        started.set()
        await release.wait()
        active -= 1
        raise LookupError("no certificate")

    verifier = RequestVerifier(trust_roots=[], fetch=slow_fetch, skill_id=lambda: SKILL_ID, now=lambda: NOW)
    tasks = [asyncio.create_task(verifier._certificate(f"https://s3.amazonaws.com/echo.api/c{n}.pem"))
             for n in range(12)]
    await started.wait()
    for _ in range(50):  # let every task run as far as it can
        await asyncio.sleep(0)
    assert active == most == MAX_CONCURRENT_FETCHES
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, AlexaVerificationError) for r in results)
    assert most == MAX_CONCURRENT_FETCHES


async def test_with_verification_off_the_skill_id_is_still_checked(settings, clock, backend):  # noqa: F811
    app = own_app(settings.replace(alexa_verify_requests=False), clock)
    async with app.test_app() as test_app:
        await _owner_with_printer()
        client = test_app.test_client()
        other = json.dumps(envelope(intent="ListPrintersIntent", skill_id="amzn1.ask.skill.someone-else")).encode()
        response = await client.post("/alexa", data=other, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "skill" in (await response.get_json())["message"]
        ours = json.dumps(envelope(intent="ListPrintersIntent")).encode()
        response = await client.post("/alexa", data=ours, headers={"Content-Type": "application/json"})
        assert speech(await response.get_json()) == "You have one printer: Prusa."
