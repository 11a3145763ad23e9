"""POST /alexa: Amazon's request verification, answered over HTTP with our own CA."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.alexa.verification import AlexaVerificationError, RequestVerifier, check_cert_url
from appliance.app import create_app
from appliance.core.herald import herald_of
from appliance.core.settings import Settings
from tests.support.alexa import (
    CERT_URL,
    NOW,
    SKILL_ID,
    body_of,
    envelope,
    make_pki,
    owner_with_printer,
    signed_headers,
    speech,
)


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
def fetcher(pki):
    return pki.fetcher()


@pytest.fixture
def app_deps(pki, fetcher):
    return {"alexa_trust_roots": [pki.root], "alexa_cert_fetcher": fetcher}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(alexa_skill_id=SKILL_ID, alexa_single_owner=True)


def own_app(settings, clock, **deps):
    """An app built here rather than by the fixture (Tortoise's statement cache is per backend)."""
    EXECUTOR_CACHE.clear()
    return create_app(settings, clock=clock, **deps)


async def _post(client, body: bytes, headers: dict[str, str]):
    return await client.post("/alexa", data=body, headers=headers)


async def post_served(client, pki, url: str, chain: bytes):
    """A signed request naming ``url``, while the test fetcher serves ``chain`` there."""
    pki.by_url[url] = chain
    try:
        body = body_of(envelope(intent="ListPrintersIntent"))
        return await _post(client, body, signed_headers(body, pki.good, url=url))
    finally:
        del pki.by_url[url]


_owner_with_printer = owner_with_printer


async def test_a_correctly_signed_request_is_answered(client, pki):
    await _owner_with_printer()
    body = body_of(envelope(intent="ProgressIntent"))
    response = await _post(client, body, signed_headers(body, pki.good))
    assert response.status_code == 200, await response.get_data(as_text=True)
    answer = await response.get_json()
    assert speech(answer) == ("Prusa has printed 50 percent of benchy, about 10 minutes left, "
                              "finishing around 7:10 am.")


async def test_certificates_are_fetched_once_and_cached(client, pki, fetcher):
    await _owner_with_printer()
    for _ in range(3):
        body = body_of(envelope(intent="ListPrintersIntent"))
        response = await _post(client, body, signed_headers(body, pki.good))
        assert response.status_code == 200
    assert fetcher.calls == [CERT_URL]


AMAZON_BAD_URLS = [
    "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "https://notamazon.com/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",
    "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",
    "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",
]


@pytest.mark.parametrize("url", AMAZON_BAD_URLS)
async def test_amazons_bad_certificate_urls_are_refused(client, pki, fetcher, url):
    response = await post_served(client, pki, url, pki.good.chain_pem)  # even if the fetcher would serve it
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_alexa_request"
    assert url not in fetcher.calls


@pytest.mark.parametrize("url", [
    "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com/echo.api/../echo.api/echo-api-cert.pem",
    "HTTPS://s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "https://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",
])
def test_amazons_good_certificate_urls_pass_the_url_rules(url):
    check_cert_url(url)


@pytest.mark.parametrize("url", AMAZON_BAD_URLS + [
    "https://s3.amazonaws.com/echo.api/../invalid.path/cert.pem",
    "https://s3.amazonaws.com.evil.example/echo.api/cert.pem",
    "https://s3.amazonaws.com:443@evil.example/echo.api/cert.pem",
    "",
])
def test_bad_certificate_urls_fail_the_url_rules(url):
    with pytest.raises(AlexaVerificationError):
        check_cert_url(url)


@pytest.mark.parametrize("variant", ["expired", "no_san", "untrusted"])
async def test_bad_signing_certificates_are_refused(client, pki, variant):
    await _owner_with_printer()
    cert = getattr(pki, variant)
    body = body_of(envelope(intent="ListPrintersIntent"))
    response = await _post(client, body, signed_headers(body, cert))
    assert response.status_code == 400
    message = (await response.get_json())["message"]
    assert "certificate" in message


async def test_a_tampered_body_is_refused(client, pki):
    body = body_of(envelope(intent="ListPrintersIntent"))
    headers = signed_headers(body, pki.good)
    tampered = body.replace(b"ListPrintersIntent", b"LastJobIntent")
    response = await _post(client, tampered, headers)
    assert response.status_code == 400
    assert "Signature-256" in (await response.get_json())["message"]


@pytest.mark.parametrize("header", ["Signature-256", "SignatureCertChainUrl"])
async def test_a_missing_header_is_refused(client, pki, header):
    body = body_of(envelope(intent="ListPrintersIntent"))
    headers = signed_headers(body, pki.good)
    del headers[header]
    response = await _post(client, body, headers)
    assert response.status_code == 400
    assert header in (await response.get_json())["message"]


@pytest.mark.parametrize("age, status", [(151, 400), (-151, 400), (150, 200), (-150, 200)])
async def test_the_timestamp_must_be_within_150_seconds(client, pki, age, status):
    await _owner_with_printer()
    body = body_of(envelope(intent="ListPrintersIntent", timestamp=NOW - timedelta(seconds=age)))
    response = await _post(client, body, signed_headers(body, pki.good))
    assert response.status_code == status


async def test_a_request_for_another_skill_is_refused(client, pki):
    body = body_of(envelope(intent="ListPrintersIntent", skill_id="amzn1.ask.skill.someone-else"))
    response = await _post(client, body, signed_headers(body, pki.good))
    assert response.status_code == 400
    assert "skill" in (await response.get_json())["message"]


async def test_a_bad_signature_encoding_is_a_400_not_a_500(client, pki):
    body = body_of(envelope(intent="ListPrintersIntent"))
    headers = signed_headers(body, pki.good)
    headers["Signature-256"] = "not base64 !!"
    response = await _post(client, body, headers)
    assert response.status_code == 400


async def test_an_app_built_the_default_way_refuses_the_test_ca(settings, clock, pki, backend):
    # only the fetcher is injected: the trust roots are the system's, which do not hold our CA
    app = own_app(settings, clock, alexa_cert_fetcher=pki.fetcher())
    async with app.test_app() as test_app:
        body = body_of(envelope(intent="ListPrintersIntent"))
        response = await test_app.test_client().post("/alexa", data=body, headers=signed_headers(body, pki.good))
        assert response.status_code == 400
        assert "certificate" in (await response.get_json())["message"]


async def test_turning_verification_off_logs_a_warning_at_start_and_accepts_unsigned(settings, clock, caplog, backend):
    settings = settings.replace(alexa_verify_requests=False)
    app = own_app(settings, clock)
    with caplog.at_level(logging.WARNING, logger="appliance.alexa.routes"):
        async with app.test_app() as test_app:
            await _owner_with_printer()
            body = json.dumps(envelope(intent="ListPrintersIntent")).encode()
            response = await test_app.test_client().post("/alexa", data=body,
                                                          headers={"Content-Type": "application/json"})
            assert response.status_code == 200
            assert speech(await response.get_json()) == "You have one printer: Prusa."
    assert any("HERALD_ALEXA_VERIFY_REQUESTS is off" in r.getMessage() for r in caplog.records)


async def test_verification_on_refuses_unsigned_requests(client):
    body = json.dumps(envelope(intent="ListPrintersIntent")).encode()
    response = await client.post("/alexa", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


async def test_an_answer_needs_a_linked_account_unless_single_owner(settings, clock, pki, backend):
    app = own_app(settings.replace(alexa_single_owner=False), clock,
                     alexa_trust_roots=[pki.root], alexa_cert_fetcher=pki.fetcher())
    async with app.test_app() as test_app:
        await _owner_with_printer()
        body = body_of(envelope(intent="ListPrintersIntent"))
        response = await test_app.test_client().post("/alexa", data=body, headers=signed_headers(body, pki.good))
        answer = await response.get_json()
        assert answer["response"]["card"]["type"] == "LinkAccount"
        body = body_of(envelope(intent="ListPrintersIntent", access_token="hat_not-a-real-token"))
        response = await test_app.test_client().post("/alexa", data=body, headers=signed_headers(body, pki.good))
        assert (await response.get_json())["response"]["card"]["type"] == "LinkAccount"


async def test_failed_fetches_leave_nothing_behind(client, app, pki, fetcher):
    verifier = herald_of(app.app).part(RequestVerifier)
    for number in range(5):
        url = f"https://s3.amazonaws.com/echo.api/missing-{number}.pem"
        body = body_of(envelope(intent="ListPrintersIntent"))
        response = await _post(client, body, signed_headers(body, pki.good, url=url))
        assert response.status_code == 400
        assert "could not be fetched" in (await response.get_json())["message"]
    assert verifier._locks == {} and len(verifier._cache) == 0
