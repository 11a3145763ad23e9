"""Alexa test kit: a CA of our own, signed request envelopes, printers in every state."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SKILL_ID = "amzn1.ask.skill.00000000-test-4000-8000-herald000001"
CERT_URL = "https://s3.amazonaws.com/echo.api/echo-api-cert-test.pem"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # FakeClock's start


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str, key, issuer_cert=None, issuer_key=None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=3650))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _leaf(key, issuer_cert, issuer_key, *, san: str | None = "echo-api.amazon.com",
          not_before: datetime | None = None, not_after: datetime | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(san or "not-echo"))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=30))
        .not_valid_after(not_after or NOW + timedelta(days=300))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass
class SigningCert:
    key: rsa.RSAPrivateKey
    chain_pem: bytes
    url: str


@dataclass
class TestPKI:
    """Our own root and intermediate CA, the good signing certificate and broken variants."""

    root: x509.Certificate
    good: SigningCert
    expired: SigningCert
    no_san: SigningCert
    untrusted: SigningCert
    by_url: dict[str, bytes] = field(default_factory=dict)

    def fetcher(self):
        """A certificate fetcher for the app: our PEMs for their s3.amazonaws.com/echo.api/ URLs."""
        calls: list[str] = []

        async def fetch(url: str) -> bytes:
            calls.append(url)
            if url not in self.by_url:
                raise LookupError(f"no test certificate at {url}")
            return self.by_url[url]

        fetch.calls = calls  # type: ignore[attr-defined]
        return fetch


def make_pki() -> TestPKI:
    root_key, inter_key, signing_key = _key(), _key(), _key()
    root = _ca("Herald Test Root CA", root_key)
    inter = _ca("Herald Test Intermediate CA", inter_key, root, root_key)
    base = "https://s3.amazonaws.com/echo.api/"

    def signing(name: str, **kwargs) -> SigningCert:
        leaf = _leaf(signing_key, inter, inter_key, **kwargs)
        return SigningCert(signing_key, pem(leaf, inter), base + name)

    good = SigningCert(signing_key, pem(_leaf(signing_key, inter, inter_key), inter), CERT_URL)
    expired = signing("expired.pem", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    no_san = signing("no-san.pem", san="www.example.com")
    other_root_key = _key()
    other_root = _ca("Someone Else's Root", other_root_key)
    untrusted = SigningCert(signing_key, pem(_leaf(signing_key, other_root, other_root_key)),
                            base + "untrusted.pem")
    pki = TestPKI(root, good, expired, no_san, untrusted)
    for cert in (good, expired, no_san, untrusted):
        pki.by_url[cert.url] = cert.chain_pem
    return pki


@asynccontextmanager
async def certificate_server(serve: Callable[[Any], Awaitable[Any]]) -> AsyncIterator[str]:
    """``serve(request)`` answers GET /echo.api/{name} on 127.0.0.1; yields the base URL
    ``http://127.0.0.1:<port>/echo.api/``."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/echo.api/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/echo.api/"
    finally:
        await runner.cleanup()


def sign(body: bytes, key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_headers(body: bytes, cert: SigningCert, url: str | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "SignatureCertChainUrl": url or cert.url,
            "Signature-256": sign(body, cert.key)}


def envelope(*, request_type: str = "IntentRequest", intent: str | None = None, printer: str | None = None,
             locale: str = "en-US", skill_id: str = SKILL_ID, timestamp: datetime | None = None,
             access_token: str | None = None, screen: bool = False,
             session_attributes: dict | None = None, api_endpoint: str = "https://api.amazonalexa.com",
             api_access_token: str | None = None, device_id: str = "amzn1.ask.device.TEST") -> dict[str, Any]:
    """A request envelope as Alexa sends it."""
    stamp = (timestamp or NOW).strftime("%Y-%m-%dT%H:%M:%SZ")
    user: dict[str, Any] = {"userId": "amzn1.ask.account.TESTUSER"}
    if access_token:
        user["accessToken"] = access_token
    interfaces: dict[str, Any] = {}
    if screen:
        interfaces["Alexa.Presentation.APL"] = {"runtime": {"maxVersion": "2023.3"}}
    request: dict[str, Any] = {"type": request_type, "requestId": f"amzn1.echo-api.request.{uuid.uuid4()}",
                               "timestamp": stamp, "locale": locale}
    if request_type == "IntentRequest":
        slots = {}
        if intent and not intent.startswith("AMAZON.") and intent != "ListPrintersIntent":
            slots["printer"] = {"name": "printer", "confirmationStatus": "NONE"}
            if printer is not None:
                slots["printer"]["value"] = printer
        request["intent"] = {"name": intent, "confirmationStatus": "NONE", "slots": slots}
    if request_type == "SessionEndedRequest":
        request["reason"] = "USER_INITIATED"
    application = {"applicationId": skill_id}
    system: dict[str, Any] = {"application": application, "user": user,
                              "device": {"deviceId": device_id, "supportedInterfaces": interfaces},
                              "apiEndpoint": api_endpoint}
    if api_access_token:
        system["apiAccessToken"] = api_access_token
    return {
        "version": "1.0",
        "session": {"new": session_attributes is None, "sessionId": "amzn1.echo-api.session.test",
                    "application": application, "user": user, "attributes": session_attributes or {}},
        "context": {"System": system},
        "request": request,
    }


def body_of(env: dict[str, Any]) -> bytes:
    return json.dumps(env).encode()


def speech(response: dict[str, Any]) -> str:
    """The spoken SSML without the <speak> wrapper."""
    ssml = response["response"]["outputSpeech"]["ssml"]
    return ssml.removeprefix("<speak>").removesuffix("</speak>")


def apl_directives(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in response["response"].get("directives") or []
            if d.get("type") == "Alexa.Presentation.APL.RenderDocument"]


# --- printers in every state (the contract's <printer> shape) --------------------------------

def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


TEMPS = {"tool0": {"actual": 210.1, "target": 210.0}, "bed": {"actual": 60.2, "target": 60.0}}
LAST_JOB = {"file": "cube.gcode", "duration": 3600, "result": "completed"}


def printer_in(state: str, name: str = "Prusa") -> dict[str, Any]:
    """A printer dict in one of: never_seen, offline, disconnected, idle, printing, paused, error."""
    seen = _iso(NOW - timedelta(seconds=60))
    base = {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "name": name, "linked": True,
            "online": True, "last_seen": seen}
    if state == "never_seen":
        return {**base, "online": False, "last_seen": None, "status": None}
    if state == "offline":
        return {**base, "online": False, "last_seen": _iso(NOW - timedelta(hours=2)),
                "status": {"state": "Operational", "state_id": "operational", "temperatures": TEMPS,
                           "last_job": LAST_JOB}}
    if state == "disconnected":
        return {**base, "status": {"state": "Offline", "state_id": "offline", "temperatures": {}}}
    if state == "idle":
        return {**base, "status": {"state": "Operational", "state_id": "operational",
                                   "temperatures": {"tool0": {"actual": 24.0, "target": 0},
                                                    "bed": {"actual": 23.5, "target": 0}},
                                   "job": {"file": None, "progress": None, "print_time_left": None},
                                   "last_job": LAST_JOB}}
    if state == "printing":
        return {**base, "status": {"state": "Printing", "state_id": "printing", "temperatures": TEMPS,
                                   "job": {"file": "Tom & Jerry <v2>.gcode", "progress": 42.5,
                                           "print_time": 1234, "print_time_left": 4860, "z": 12.4},
                                   "last_job": LAST_JOB}}
    if state == "paused":
        return {**base, "status": {"state": "Paused", "state_id": "paused", "temperatures": TEMPS,
                                   "job": {"file": "benchy_0.2mm_PLA_MK3S_1h2m.gcode", "progress": 61.0,
                                           "print_time_left": 1800},
                                   "last_job": LAST_JOB}}
    if state == "error":
        return {**base, "status": {"state": "Error: Thermal runaway", "state_id": "error",
                                   "temperatures": TEMPS,
                                   "last_job": {"file": "vase.gcode", "duration": 5400, "result": "failed"}}}
    raise ValueError(state)


STATES = ("never_seen", "offline", "disconnected", "idle", "printing", "paused", "error")


async def owner_with_printer():
    """An admin in New York with "Prusa" printing benchy: half done, 11 minutes left a minute ago."""
    from appliance.printers.models import Printer
    from tests.support.users import make_user

    admin = await make_user("owner@example.com", admin=True)
    admin.time_zone = "America/New_York"
    await admin.save()
    await Printer.create(id=str(uuid.uuid4()), owner=admin, name="Prusa", key_hash="x" * 64, online=True,
                         last_seen_at=NOW - timedelta(seconds=60), status={
                             "state": "Printing", "state_id": "printing",
                             "job": {"file": "benchy.gcode", "progress": 50, "print_time_left": 660}})
    return admin
