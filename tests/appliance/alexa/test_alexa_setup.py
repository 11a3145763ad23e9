"""The Alexa setup page and the skill package it offers: the package must validate."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from pathlib import Path

import pytest

from appliance.printers.models import Printer
from skill import LOCALES
from skill.handlers import HANDLED_INTENTS
from tests.support.users import login, make_user

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture
def settings(settings):
    return settings.replace(public_url="https://herald.example.net", alexa_skill_id="amzn1.ask.skill.abc")


async def _admin(client):
    admin = await make_user("admin@example.com", admin=True)
    return admin, await login(client, "admin@example.com")


async def test_setup_page_shows_every_value_for_the_console(client):
    _, csrf = await _admin(client)
    before = await (await client.get("/alexa/setup")).get_data(as_text=True)
    assert "Enter your vendor id above" in before
    response = await client.post("/alexa/setup", form={"vendor_id": "M1ABCDEF", "csrf_token": csrf})
    page = await response.get_data(as_text=True)
    for text in ("https://herald.example.net/alexa", "https://herald.example.net/oauth/authorize",
                 "https://herald.example.net/oauth/token", "HTTP Basic (Recommended)", "printers:read",
                 "https://pitangui.amazon.com/api/skill/link/M1ABCDEF",
                 "https://layla.amazon.com/api/skill/link/M1ABCDEF",
                 "https://alexa.amazon.co.jp/api/skill/link/M1ABCDEF",
                 "trusted certificate authority", "amzn1.ask.skill.abc", 'id="client-id">herald-',
                 'id="client-secret">'):
        assert text in page, text
    # a new vendor id updates the redirect URLs and keeps the client
    again = await (await client.post("/alexa/setup", form={"vendor_id": "M2XYZ", "csrf_token": csrf})).get_data(as_text=True)
    assert "https://layla.amazon.com/api/skill/link/M2XYZ" in again and "M1ABCDEF" not in again


async def test_setup_page_numbers_its_steps_as_the_readme_does(client):
    """The README's "Alexa" steps 1-8 and the page's cards tell one story with one numbering."""
    readme = README.read_text()
    section = readme.split("\n## Alexa\n", 1)[1].split("\n## ", 1)[0]
    steps = {int(n): title for n, title in re.findall(r"^(\d+)\. \*\*(.+?)\.?\*\*", section, re.M)}
    assert sorted(steps) == list(range(1, 9)), steps
    assert "steps 3 to 8 with the same numbers" in " ".join(section.split())

    await _admin(client)
    page = await (await client.get("/alexa/setup")).get_data(as_text=True)
    cards = {int(n): title for n, title in re.findall(r"<h2>(\d+)\. ([^<(]+?)\s*(?:\(|</h2>)", page)}
    assert sorted(cards) == list(range(3, 9)), cards
    assert "vendor id" in cards[3] and "vendor id" in steps[3].lower() + section.split("\n3. ", 1)[1][:300]
    for number in range(4, 9):
        assert cards[number].lower() == steps[number].lower(), (number, cards[number], steps[number])
    # Steps 1 and 2 happen before the page; it says so with the README's numbers.
    assert "<strong>1.</strong> HTTPS on port 443" in page and "<strong>2.</strong> a new skill" in page


async def test_a_bad_vendor_id_is_named_next_to_the_field(client):
    _, csrf = await _admin(client)
    response = await client.post("/alexa/setup", form={"vendor_id": "no/slashes", "csrf_token": csrf})
    assert response.status_code == 400
    page = await response.get_data(as_text=True)
    assert 'id="vendor-error"' in page and "vendor id" in page


async def test_setup_is_for_admins(client):
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    assert (await client.get("/alexa/setup")).status_code == 403


async def test_the_skill_package_validates(client):
    admin, csrf = await _admin(client)
    await client.post("/alexa/setup", form={"vendor_id": "M1ABCDEF", "csrf_token": csrf})
    for name in ("Prusa MK4", "Ender & Co"):
        await Printer.create(id=str(uuid.uuid4()), owner=admin, name=name)
    response = await client.get("/alexa/skill-package.zip")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await response.get_data()))

    manifest = json.loads(archive.read("skill-package/skill.json"))["manifest"]
    assert manifest["apis"]["custom"]["endpoint"] == {"uri": "https://herald.example.net/alexa",
                                                      "sslCertificateType": "Trusted"}
    assert set(manifest["publishingInformation"]["locales"]) == set(LOCALES)

    for locale in LOCALES:
        model = json.loads(archive.read(f"skill-package/interactionModels/custom/{locale}.json"))
        language = model["interactionModel"]["languageModel"]
        assert language["invocationName"] == "herald"
        intents = {intent["name"] for intent in language["intents"]}
        assert intents == set(HANDLED_INTENTS), locale  # both ways: handled <-> modelled
        samples = [s.lower() for intent in language["intents"] for s in intent.get("samples", [])]
        assert len(samples) == len(set(samples)), f"{locale}: duplicate sample utterances"
        types = {t["name"]: t for t in language.get("types", [])}
        for intent in language["intents"]:
            slots = {slot["name"]: slot["type"] for slot in intent.get("slots", [])}
            for sample in intent.get("samples", []):
                # Alexa's rules: a slot stands alone between spaces; no punctuation but
                # apostrophes and periods; no digits (numbers are said in words).
                assert re.fullmatch(r"(\{\w+\}|[^\W\d_][\w']*)( (\{\w+\}|[^\W\d_][\w']*))*", sample), sample
                for slot in [part.split("}")[0] for part in sample.split("{")[1:]]:
                    assert slot in slots, f"{locale} {intent['name']}: {{{slot}}} is not a slot"
            for slot_type in slots.values():
                assert slot_type in types or slot_type.startswith("AMAZON.")
        values = [v["name"]["value"] for v in types["PRINTER_NAME"]["values"]]
        assert sorted(values) == ["Ender Co", "Prusa MK4"]  # "&" is not allowed in a slot value

    linking = json.loads(archive.read("accountLinking.json"))["accountLinkingRequest"]
    assert linking["type"] == "AUTH_CODE"
    assert linking["authorizationUrl"] == "https://herald.example.net/oauth/authorize"
    assert linking["accessTokenUrl"] == "https://herald.example.net/oauth/token"
    assert linking["accessTokenScheme"] == "HTTP_BASIC"
    assert linking["clientId"].startswith("herald-") and linking["clientSecret"]
    assert linking["scopes"] == ["printers:read"]
    assert linking["defaultTokenExpirationInSeconds"] >= 360


async def test_every_value_to_paste_has_a_copy_button(client):
    _, csrf = await _admin(client)
    response = await client.post("/alexa/setup", form={"vendor_id": "M1ABCDEF", "csrf_token": csrf})
    page = await response.get_data(as_text=True)
    codes = dict(re.findall(r'<code id="([^"]+)">([^<]*)</code>', page))
    buttons = re.findall(r'<button type="button"[^>]*data-copy="#([^"]+)"[^>]*aria-label="Copy ([^"]+)"', page)
    assert {target for target, _ in buttons} == set(codes)
    assert set(codes) >= {"endpoint", "authorization-uri", "token-uri", "client-id", "client-secret", "scope-1",
                          "token-seconds", "redirect-uri-1", "redirect-uri-2", "redirect-uri-3", "skill-id"}
    assert codes["endpoint"] == "https://herald.example.net/alexa" and codes["skill-id"] == "amzn1.ask.skill.abc"
    assert codes["scope-1"] == "printers:read" and codes["client-secret"]
    assert len({label for _, label in buttons}) == len(buttons)  # each says what it copies
    assert "js/herald.js" in page  # the data-copy behaviour every page loads


@pytest.mark.parametrize("single_owner, verify", [(False, True), (True, True), (False, False), (True, False)])
async def test_the_page_says_when_single_owner_or_verification_off_is_in_force(app, client, single_owner, verify):
    from appliance.core.herald import herald_of

    herald = herald_of(app.app)
    herald.settings = herald.settings.replace(alexa_single_owner=single_owner, alexa_verify_requests=verify)
    await _admin(client)
    page = await (await client.get("/alexa/setup")).get_data(as_text=True)
    assert ('id="single-owner-notice"' in page) is single_owner
    assert ("HERALD_ALEXA_SINGLE_OWNER" in page) is single_owner
    assert ('id="verification-off-notice"' in page) is not verify
    assert ("answers requests Amazon did not sign" in page) is not verify


@pytest.mark.parametrize("changes", [{}, {"alexa_trust_roots_file": "/tmp/roots.pem"},
                                     {"alexa_cert_url_base": "http://127.0.0.1:9/echo.api/"}])
async def test_the_page_says_when_test_certificates_are_trusted(app, client, changes):
    from appliance.core.herald import herald_of

    herald = herald_of(app.app)
    herald.settings = herald.settings.replace(**changes)
    await _admin(client)
    page = await (await client.get("/alexa/setup")).get_data(as_text=True)
    assert ('id="test-trust-notice"' in page) is bool(changes)
