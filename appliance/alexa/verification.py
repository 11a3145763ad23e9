"""Verifying that a request to /alexa comes from Amazon, as a web-service skill must.

The checks: the SignatureCertChainUrl rules, then the cheap ones (the request
timestamp within 150 s, the skill id), and only then the certificate chain
(validity window, SAN echo-api.amazon.com, chain to a trusted root) and the
Signature-256 over the raw body; so a forged request cannot make Herald fetch a
certificate unless it names this skill and the present time. The certificate is
fetched from the URL as checked (normalised), never as written; failed URLs are
remembered for a while and fetches are bounded in number at once.
The trusted roots and the certificate fetcher are dependencies handed to
create_app (``alexa_trust_roots``, ``alexa_cert_fetcher``); tests inject their own CA.
A test that runs the real server instead names its own roots and certificate server through
two settings meant for tests only (``HERALD_ALEXA_TRUST_ROOTS_FILE``,
``HERALD_ALEXA_CERT_URL_BASE``); their defaults are Amazon's rules.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import posixpath
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

log = logging.getLogger(__name__)

SIGNING_SAN = "echo-api.amazon.com"
CERT_HOST = "s3.amazonaws.com"
CERT_PATH_PREFIX = "/echo.api/"
MAX_SKEW = timedelta(seconds=150)
FAILURE_MEMORY = timedelta(minutes=5)  # a URL that failed is not fetched again for this long
MAX_REMEMBERED_FAILURES = 256
MAX_CONCURRENT_FETCHES = 2
FETCH_SLOT_WAIT = 10.0  # seconds a request waits for a free fetch before it is refused

CertFetcher = Callable[[str], Awaitable[bytes]]


class AlexaVerificationError(Exception):
    """A request failed one of Amazon's checks; the message says which."""


AMAZON_CERT_URL_BASE = f"https://{CERT_HOST}{CERT_PATH_PREFIX}"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def check_cert_url(url: str, base: str = AMAZON_CERT_URL_BASE) -> str:
    """Amazon's rules for SignatureCertChainUrl: the URL to fetch, as checked; raises AlexaVerificationError.

    Amazon accepts ``https://s3.amazonaws.com:443/echo.api/../echo.api/x.pem``, so the
    path is judged decoded and normalised; the URL returned is built from that very
    path (no query, no fragment), so what is fetched is what was checked. ``base`` holds
    the rule (scheme, host, port, path prefix): Amazon's unless a test's setting
    (``HERALD_ALEXA_CERT_URL_BASE``) names its own certificate server.
    """
    rule = urlsplit(base)
    scheme, host = rule.scheme.lower(), (rule.hostname or "").lower()
    port_wanted = rule.port or _DEFAULT_PORTS[scheme]
    prefix = rule.path
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AlexaVerificationError(f"certificate URL is malformed: {exc}") from None
    if parts.scheme.lower() != scheme:
        raise AlexaVerificationError(f"certificate URL must use {scheme}")
    if (parts.hostname or "").lower() != host:
        raise AlexaVerificationError(f"certificate URL host must be {host}")
    if port not in (None, port_wanted) or (port is None and rule.port not in (None, _DEFAULT_PORTS[scheme])):
        raise AlexaVerificationError(f"certificate URL port must be {port_wanted}")
    decoded = unquote(parts.path)
    if "\\" in decoded or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise AlexaVerificationError("certificate URL path holds a backslash or control character")
    path = posixpath.normpath(decoded) if parts.path else ""
    if not path.startswith(prefix):
        raise AlexaVerificationError(f"certificate URL path must start with {prefix}")
    netloc = host if port_wanted == _DEFAULT_PORTS[scheme] else f"{host}:{port_wanted}"
    return f"{scheme}://{netloc}{quote(path, safe='/')}"


def trust_roots_from_file(path: str) -> Callable[[], list[x509.Certificate]]:
    """Roots for tests (``HERALD_ALEXA_TRUST_ROOTS_FILE``): every certificate in a PEM file."""
    def load() -> list[x509.Certificate]:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificates(handle.read())
    return load


def default_trust_roots() -> list[x509.Certificate]:
    """The CA bundle Python trusts (certifi's, which follows Mozilla's root program)."""
    import certifi

    with open(certifi.where(), "rb") as handle:
        bundle = handle.read()
    roots = []
    end = b"-----END CERTIFICATE-----"
    for block in bundle.split(end)[:-1]:
        # A few old roots carry a negative serial number, which cryptography warns about;
        # they are still roots the system trusts, so load them quietly, and skip any it rejects.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                roots.append(x509.load_pem_x509_certificate(block + end))
            except ValueError:
                continue
    return roots


@dataclass
class _VerifiedCert:
    public_key: rsa.RSAPublicKey
    not_before: datetime
    not_after: datetime


class RequestVerifier:
    """Verifies Alexa requests; caches verified certificates (bounded) until they expire."""

    def __init__(self, *, trust_roots: list[x509.Certificate] | Callable[[], list[x509.Certificate]],
                 fetch: CertFetcher, skill_id: Callable[[], str], now: Callable[[], datetime],
                 cache_size: int = 16, cert_url_base: Callable[[], str] = lambda: AMAZON_CERT_URL_BASE) -> None:
        # A callable is loaded on first use, so building an app does not parse a CA bundle.
        self._roots = trust_roots
        self._store: Store | None = None
        self._fetch = fetch
        self._skill_id = skill_id
        self._cert_url_base = cert_url_base
        self._now = now
        self._cache: OrderedDict[str, _VerifiedCert] = OrderedDict()
        self._cache_size = cache_size
        self._locks: dict[str, asyncio.Lock] = {}
        self._failures: OrderedDict[str, tuple[datetime, str]] = OrderedDict()  # url -> (until, why)
        self._fetch_slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    async def verify(self, headers: Any, body: bytes) -> dict[str, Any]:
        """Return the parsed request envelope, or raise AlexaVerificationError."""
        url = headers.get("SignatureCertChainUrl", "")
        signature = headers.get("Signature-256", "")
        if not url:
            raise AlexaVerificationError("SignatureCertChainUrl header is missing")
        if not signature:
            raise AlexaVerificationError("Signature-256 header is missing")
        fetch_url = check_cert_url(url, self._cert_url_base())
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except ValueError:
            raise AlexaVerificationError("Signature-256 does not match the body") from None
        # The cheap checks first: none of them needs the network.
        envelope = parse_envelope(body)
        now = self._now()
        check_timestamp(envelope, now)
        check_skill_id(envelope, self._skill_id())
        cert = await self._certificate(fetch_url)
        now = self._now()
        if not cert.not_before <= now <= cert.not_after:
            raise AlexaVerificationError("signing certificate is not valid now")
        try:
            cert.public_key.verify(raw_signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise AlexaVerificationError("Signature-256 does not match the body") from None
        return envelope

    def check_unverified(self, body: bytes) -> dict[str, Any]:
        """With signature checks turned off: the envelope, still for this skill when a skill id is set."""
        envelope = parse_envelope(body)
        skill_id = self._skill_id()
        if skill_id:
            check_skill_id(envelope, skill_id)
        return envelope

    async def _certificate(self, url: str) -> _VerifiedCert:
        cached = self._cache.get(url)
        if cached is not None and self._now() <= cached.not_after:
            self._cache.move_to_end(url)
            return cached
        # One fetch per URL at a time; the lock is dropped afterwards whatever happened, so
        # requests naming ever new (failing) URLs cannot grow this dict.
        lock = self._locks.setdefault(url, asyncio.Lock())
        try:
            async with lock:
                cached = self._cache.get(url)
                if cached is not None and self._now() <= cached.not_after:
                    return cached
                failed = self._failures.get(url)
                if failed is not None:
                    if self._now() < failed[0]:
                        raise AlexaVerificationError(failed[1])
                    del self._failures[url]
                try:
                    verified = self._validate_chain(await self._fetch_bounded(url))
                except AlexaVerificationError as exc:
                    self._remember_failure(url, str(exc))
                    raise
                self._failures.pop(url, None)
                self._cache[url] = verified
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                return verified
        finally:
            if not lock.locked():
                self._locks.pop(url, None)

    async def _fetch_bounded(self, url: str) -> bytes:
        """Fetch with at most MAX_CONCURRENT_FETCHES at once; a request that cannot get a slot is refused."""
        try:
            await asyncio.wait_for(self._fetch_slots.acquire(), timeout=FETCH_SLOT_WAIT)
        except TimeoutError:
            raise AlexaVerificationError("too many signing certificates are being fetched; try again") from None
        try:
            return await self._fetch(url)
        except Exception as exc:  # any failure to fetch is a failed check, not a 500
            raise AlexaVerificationError(f"signing certificate could not be fetched: {exc}") from None
        finally:
            self._fetch_slots.release()

    def _remember_failure(self, url: str, message: str) -> None:
        self._failures[url] = (self._now() + FAILURE_MEMORY, message)
        self._failures.move_to_end(url)
        while len(self._failures) > MAX_REMEMBERED_FAILURES:
            self._failures.popitem(last=False)

    def _validate_chain(self, pem: bytes) -> _VerifiedCert:
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise AlexaVerificationError("signing certificate is not PEM") from None
        leaf, intermediates = certs[0], certs[1:]
        now = self._now()
        if self._store is None:
            self._store = Store(self._roots() if callable(self._roots) else list(self._roots))
        verifier = (PolicyBuilder().store(self._store).time(now)
                    .build_server_verifier(x509.DNSName(SIGNING_SAN)))
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            raise AlexaVerificationError(f"signing certificate rejected: {exc}") from None
        key = leaf.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise AlexaVerificationError("signing certificate does not hold an RSA key")
        return _VerifiedCert(key, leaf.not_valid_before_utc, leaf.not_valid_after_utc)


def parse_envelope(body: bytes) -> dict[str, Any]:
    import json

    try:
        envelope = json.loads(body)
    except ValueError:
        raise AlexaVerificationError("body is not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("request"), dict):
        raise AlexaVerificationError("body is not an Alexa request envelope")
    return envelope


def check_timestamp(envelope: dict[str, Any], now: datetime) -> None:
    stamp = envelope["request"].get("timestamp")
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        raise AlexaVerificationError("request timestamp is missing or malformed") from None
    if moment.tzinfo is None or abs(now - moment) > MAX_SKEW:
        raise AlexaVerificationError("request timestamp is more than 150 seconds off")


def application_id(envelope: dict[str, Any]) -> str:
    system = (envelope.get("context") or {}).get("System") or {}
    app_id = (system.get("application") or {}).get("applicationId")
    if not app_id:
        app_id = ((envelope.get("session") or {}).get("application") or {}).get("applicationId")
    return str(app_id or "")


def check_skill_id(envelope: dict[str, Any], skill_id: str) -> None:
    if not skill_id:
        raise AlexaVerificationError("no skill id is configured (HERALD_ALEXA_SKILL_ID)")
    if application_id(envelope) != skill_id:
        raise AlexaVerificationError("request is for another skill")
