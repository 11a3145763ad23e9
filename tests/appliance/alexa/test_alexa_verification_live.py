"""Alexa's request checks end to end, ON, as in production: the real ``herald serve`` under
hypercorn, a test-only certificate chain (our own root CA and a signing certificate with SAN
echo-api.amazon.com) served over HTTP by a local server, and requests signed as Amazon signs
them (``Signature-256``: RSA PKCS#1 v1.5 with SHA-256 over the raw body). Herald is pointed at
the test chain only through its two test settings (trusted roots file, certificate URL rule).

A correct request is answered; forged, expired and replayed ones are refused with 400."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from tests.appliance.printers.test_printers_live import create_admin
from tests.conftest import free_port
from tests.support.alexa import (
    SKILL_ID,
    certificate_server,
    envelope,
    make_pki,
    pem,
    sign,
    signed_headers,
)
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
async def cert_server(pki):
    """The chains at http://127.0.0.1:<port>/echo.api/<name>; yields (base URL, fetch counts)."""
    chains = {"good.pem": pki.good.chain_pem, "expired.pem": pki.expired.chain_pem,
              "no-san.pem": pki.no_san.chain_pem, "untrusted.pem": pki.untrusted.chain_pem}
    fetched: dict[str, int] = {}

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        fetched[name] = fetched.get(name, 0) + 1
        return web.Response(body=chains[name]) if name in chains else web.Response(status=404)

    async with certificate_server(serve) as base:
        yield base, fetched


@pytest.fixture
def herald_verifying(tmp_path, pki, cert_server):
    base, _ = cert_server
    roots = tmp_path / "test-roots.pem"
    roots.write_bytes(pem(pki.root))
    server = LiveServer(data_dir=tmp_path / "data", port=free_port(), env={
        "HERALD_ALEXA_SKILL_ID": SKILL_ID, "HERALD_ALEXA_SINGLE_OWNER": "true",
        # verification stays on (the default); only the roots and the certificate URL rule are the test's
        "HERALD_ALEXA_TRUST_ROOTS_FILE": str(roots), "HERALD_ALEXA_CERT_URL_BASE": base}).start()
    create_admin(server)
    yield server
    assert server.stop() == 0, server.log()


def _launch(timestamp: datetime | None = None) -> bytes:
    return json.dumps(envelope(request_type="LaunchRequest",
                               timestamp=timestamp or datetime.now(UTC))).encode()


async def _post(server: LiveServer, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(server.url + "/alexa", data=body,
                                                          headers=headers) as response:
        return response.status, await response.json()


async def test_a_signed_request_is_answered_and_forged_expired_and_replayed_ones_are_refused(
        herald_verifying, cert_server, pki):
    base, fetched = cert_server
    good = base + "good.pem"
    assert "trusts signing certificates that are not Amazon's" in herald_verifying.log()

    body = _launch()
    status, answer = await _post(herald_verifying, body, signed_headers(body, pki.good, url=good))
    assert status == 200, answer
    assert answer["version"] == "1.0" and answer["response"]["outputSpeech"]["type"] == "SSML"
    assert fetched["good.pem"] == 1

    refused: dict[str, tuple[int, dict]] = {}
    # forged: the body changed after signing
    signed = signed_headers(body, pki.good, url=good)
    refused["forged body"] = await _post(herald_verifying, body.replace(b"LaunchRequest", b"IntentRequest"), signed)
    # forged: a signature by a key the certificate does not hold
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused["other key"] = await _post(herald_verifying, body, {**signed, "Signature-256": sign(body, stranger)})
    # forged: a chain to a root Herald does not trust, and one without the SAN
    refused["untrusted root"] = await _post(herald_verifying, body, signed_headers(body, pki.untrusted,
                                                                                   url=base + "untrusted.pem"))
    refused["no SAN"] = await _post(herald_verifying, body, signed_headers(body, pki.no_san, url=base + "no-san.pem"))
    # forged: a certificate URL outside the rule (Amazon's own host is not this test's rule)
    refused["other URL"] = await _post(herald_verifying, body, signed_headers(
        body, pki.good, url="https://s3.amazonaws.com/echo.api/echo-api-cert.pem"))
    refused["other path"] = await _post(herald_verifying, body, signed_headers(
        body, pki.good, url=base.replace("/echo.api/", "/echo.api/../elsewhere/") + "good.pem"))
    refused["no signature"] = await _post(herald_verifying, body, {"Content-Type": "application/json",
                                                                    "SignatureCertChainUrl": good})
    # expired: the signing certificate's validity ended
    refused["expired certificate"] = await _post(herald_verifying, body, signed_headers(
        body, pki.expired, url=base + "expired.pem"))
    # replayed: a correctly signed request captured three minutes ago and sent again
    old = _launch(datetime.now(UTC) - timedelta(seconds=180))
    refused["replayed"] = await _post(herald_verifying, old, signed_headers(old, pki.good, url=good))

    for case, (status, answer) in refused.items():
        assert status == 400, (case, answer)
        assert answer["error"] == "invalid_alexa_request" and answer["message"], (case, answer)
    messages = {case: answer["message"] for case, (_, answer) in refused.items()}
    assert messages["forged body"] == messages["other key"] == "Signature-256 does not match the body"
    assert "rejected" in messages["untrusted root"] and "rejected" in messages["no SAN"]
    assert messages["other URL"] == "certificate URL must use http"
    assert messages["other path"] == "certificate URL path must start with /echo.api/"
    assert messages["expired certificate"].startswith("signing certificate")
    assert "150 seconds" in messages["replayed"]
    assert "other URL" not in fetched and fetched["good.pem"] == 1  # refused before any fetch; cached

    # and the correct request still passes afterwards
    body = _launch()
    status, _ = await _post(herald_verifying, body, signed_headers(body, pki.good, url=good))
    assert status == 200


def test_the_test_settings_default_to_amazons_rules_and_refuse_nonsense():
    from appliance.alexa.verification import AMAZON_CERT_URL_BASE, check_cert_url
    from appliance.core.settings import Settings, SettingsError

    defaults = Settings.build()
    assert defaults.alexa_cert_url_base == AMAZON_CERT_URL_BASE == "https://s3.amazonaws.com/echo.api/"
    assert defaults.alexa_trust_roots_file == ""
    for bad in ("ftp://127.0.0.1/echo.api/", "http:///echo.api/", "http://127.0.0.1:8000/echo.api"):
        with pytest.raises(SettingsError, match="alexa_cert_url_base"):
            Settings.build(alexa_cert_url_base=bad)
    # a local rule keeps its port and prefix; Amazon's rule keeps refusing other ports
    local = "http://127.0.0.1:8443/echo.api/"
    assert check_cert_url("http://127.0.0.1:8443/echo.api/x/../c.pem", local) == "http://127.0.0.1:8443/echo.api/c.pem"
    for url in ("http://127.0.0.1/echo.api/c.pem", "http://127.0.0.1:8444/echo.api/c.pem"):
        with pytest.raises(Exception, match="port must be 8443"):
            check_cert_url(url, local)
    with pytest.raises(Exception, match="port must be 443"):
        check_cert_url("https://s3.amazonaws.com:8443/echo.api/c.pem")
