"""Account linking end to end: Herald as the OAuth 2.0 authorization server Alexa links with."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from appliance.accounts.models import AccessToken
from appliance.alexa import status_source as alexa_service
from appliance.core.secrets import token_hash
from appliance.printers.models import Printer
from tests.support.alexa import NOW, SKILL_ID, body_of, envelope, make_pki, signed_headers, speech
from tests.support.users import login, make_user

VENDOR = "M2TESTVENDOR9"
REDIRECT = f"https://pitangui.amazon.com/api/skill/link/{VENDOR}"


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
def app_deps(pki):
    return {"alexa_trust_roots": [pki.root], "alexa_cert_fetcher": pki.fetcher()}


@pytest.fixture
def settings(settings):
    return settings.replace(alexa_skill_id=SKILL_ID)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture
async def alexa_client(app, client):
    """The admin sets up Alexa on the setup page; returns (client_id, secret)."""
    await make_user("admin@example.com", admin=True)
    csrf = await login(client, "admin@example.com")
    response = await client.post("/alexa/setup", form={"vendor_id": VENDOR, "csrf_token": csrf})
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    herald = app.app.extensions["herald"]
    row = await alexa_service.alexa_client(herald)
    secret = herald.secret_box.decrypt(row.secret_encrypted)
    assert row.client_id in page and secret in page
    for host in ("pitangui.amazon.com", "layla.amazon.com", "alexa.amazon.co.jp"):
        assert f"https://{host}/api/skill/link/{VENDOR}" in page
    assert secret not in row.secret_encrypted  # encrypted at rest, not stored in the clear
    await client.post("/logout", form={"csrf_token": csrf})
    return row.client_id, secret


async def authorize(client, client_id: str, *, challenge: str | None, redirect_uri: str = REDIRECT,
                    decision: str = "allow", state: str = "st4te") -> str:
    """Drive the consent page as the logged-in user; returns the Location Herald redirects to."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "state": state, "scope": "printers:read"}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    page = await client.get("/oauth/authorize?" + urlencode(params))
    assert page.status_code == 200, await page.get_data(as_text=True)
    html = await page.get_data(as_text=True)
    assert "Allow Alexa to use your Herald account?" in html
    assert "See your printers and their status" in html
    from tests.support.users import csrf_from

    csrf = await csrf_from(client, "/oauth/authorize?" + urlencode(params))
    response = await client.post("/oauth/authorize", form={**params, "csrf_token": csrf, "decision": decision})
    assert response.status_code == 302
    return response.headers["Location"]


def code_of(location: str) -> str:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT
    query = parse_qs(parts.query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


async def token_request(app, form: dict[str, str], headers: dict[str, str] | None = None):
    fresh = app.test_client()  # a server-to-server call: no browser cookies
    return await fresh.post("/oauth/token", form=form, headers=headers or {})


async def add_printer(user, name: str, state_id: str = "operational"):
    return await Printer.create(id=str(uuid.uuid4()), owner=user, name=name, key_hash=secrets.token_hex(32), online=True,
                                last_seen_at=NOW - timedelta(seconds=30),
                                status={"state": state_id.title(), "state_id": state_id})


async def ask_alexa(app, pki, access_token: str | None, intent: str = "ListPrintersIntent"):
    now = app.app.extensions["herald"].clock.now()
    body = body_of(envelope(intent=intent, access_token=access_token, timestamp=now))
    response = await app.test_client().post("/alexa", data=body, headers=signed_headers(body, pki.good))
    assert response.status_code == 200
    return await response.get_json()


async def test_full_account_linking_flow(app, client, alexa_client, pki, clock):
    client_id, secret = alexa_client
    ada = await make_user("ada@example.com")
    bob = await make_user("bob@example.com")
    await add_printer(ada, "Prusa")
    await add_printer(ada, "Ender")
    await add_printer(bob, "Bob's Voron")
    await login(client, "ada@example.com")

    # authorization code with PKCE, client authenticated by HTTP Basic
    verifier, challenge = pkce()
    code = code_of(await authorize(client, client_id, challenge=challenge))
    response = await token_request(app, {"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": REDIRECT, "code_verifier": verifier},
                                   basic(client_id, secret))
    assert response.status_code == 200, await response.get_data(as_text=True)
    tokens = await response.get_json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["access_token"].startswith("hat_") and tokens["refresh_token"].startswith("hrt_")
    assert tokens["expires_in"] >= 360
    assert tokens["scope"] == "printers:read"
    assert response.headers["Cache-Control"] == "no-store"
    stored = await AccessToken.get(token_hash=token_hash(tokens["access_token"]))
    assert stored.refresh_token_hash == token_hash(tokens["refresh_token"])  # only hashes are stored
    assert stored.client_id == client_id

    # the token answers for Ada's printers only
    answer = await ask_alexa(app, pki, tokens["access_token"])
    assert speech(answer) == "You have 2 printers: Ender and Prusa."

    # refresh with rotation: the old refresh token stops working
    refreshed = await token_request(app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                    basic(client_id, secret))
    assert refreshed.status_code == 200, await refreshed.get_data(as_text=True)
    new = await refreshed.get_json()
    assert new["refresh_token"].startswith("hrt_") and new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    reuse = await token_request(app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                basic(client_id, secret))
    assert reuse.status_code == 400
    assert (await reuse.get_json())["error"] == "invalid_grant"
    assert speech(await ask_alexa(app, pki, new["access_token"])) == "You have 2 printers: Ender and Prusa."

    # the code works once; a second use also ends the tokens issued from it (RFC 6749 4.1.2),
    # which test_reusing_an_authorization_code_revokes_the_tokens_issued_from_it shows in full
    again = await token_request(app, {"grant_type": "authorization_code", "code": code,
                                      "redirect_uri": REDIRECT, "code_verifier": verifier},
                                basic(client_id, secret))
    assert again.status_code == 400
    assert (await again.get_json())["error"] == "invalid_grant"
    assert (await ask_alexa(app, pki, new["access_token"]))["response"]["card"]["type"] == "LinkAccount"

    # access tokens expire; Alexa then refreshes
    relinked = await _linked_tokens(app, client, client_id, secret)
    clock.advance(61 * 60)
    assert (await ask_alexa(app, pki, relinked["access_token"]))["response"]["card"]["type"] == "LinkAccount"


async def test_client_credentials_in_the_body(app, client, alexa_client, pki):
    client_id, secret = alexa_client
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    verifier, challenge = pkce()
    code = code_of(await authorize(client, client_id, challenge=challenge))
    response = await token_request(app, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                         "code_verifier": verifier, "client_id": client_id,
                                         "client_secret": secret})
    assert response.status_code == 200, await response.get_data(as_text=True)
    tokens = await response.get_json()
    refreshed = await token_request(app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                          "client_id": client_id, "client_secret": secret})
    assert refreshed.status_code == 200
    # a linked account without printers is told how to add one
    answer = await ask_alexa(app, pki, (await refreshed.get_json())["access_token"])
    assert speech(answer) == "You have no printers in Herald yet. Add one on your Herald web page."


async def test_a_wrong_secret_or_verifier_fails(app, client, alexa_client):
    client_id, secret = alexa_client
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    verifier, challenge = pkce()
    code = code_of(await authorize(client, client_id, challenge=challenge))
    wrong_secret = await token_request(app, {"grant_type": "authorization_code", "code": code,
                                             "redirect_uri": REDIRECT, "code_verifier": verifier},
                                       basic(client_id, "not-the-secret"))
    assert wrong_secret.status_code == 401
    assert (await wrong_secret.get_json())["error"] == "invalid_client"
    other_verifier, _ = pkce()
    wrong_verifier = await token_request(app, {"grant_type": "authorization_code", "code": code,
                                               "redirect_uri": REDIRECT, "code_verifier": other_verifier},
                                         basic(client_id, secret))
    assert wrong_verifier.status_code == 400
    assert (await wrong_verifier.get_json())["error"] == "invalid_grant"


async def test_plain_pkce_is_refused(app, client, alexa_client):
    client_id, _ = alexa_client
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "s",
              "code_challenge": "a" * 43, "code_challenge_method": "plain"}
    response = await client.get("/oauth/authorize?" + urlencode(params))
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query)["error"] == ["invalid_request"]


async def test_a_wrong_redirect_url_fails(app, client, alexa_client):
    client_id, secret = alexa_client
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    for uri in ("https://evil.example/api/skill/link/" + VENDOR, REDIRECT + "/", REDIRECT.upper()):
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": uri, "state": "s"}
        response = await client.get("/oauth/authorize?" + urlencode(params))
        assert response.status_code == 400  # an error page, never a redirect to an unknown URL
        assert "not supported by client" in await response.get_data(as_text=True)
    # the token request must repeat the redirect URL of the authorization
    verifier, challenge = pkce()
    code = code_of(await authorize(client, client_id, challenge=challenge))
    response = await token_request(app, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                         "redirect_uri": "https://layla.amazon.com/api/skill/link/" + VENDOR},
                                   basic(client_id, secret))
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_grant"


async def test_every_alexa_redirect_url_is_accepted(app, client, alexa_client):
    client_id, _ = alexa_client
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    for host in ("pitangui.amazon.com", "layla.amazon.com", "alexa.amazon.co.jp"):
        uri = f"https://{host}/api/skill/link/{VENDOR}"
        location = await authorize(client, client_id, challenge=pkce()[1], redirect_uri=uri)
        assert location.startswith(uri + "?code=")


async def test_denying_consent_redirects_with_access_denied(app, client, alexa_client):
    client_id, _ = alexa_client
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    location = await authorize(client, client_id, challenge=pkce()[1], decision="deny")
    assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]


async def test_codes_expire(app, client, alexa_client, clock):
    client_id, secret = alexa_client
    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    verifier, challenge = pkce()
    code = code_of(await authorize(client, client_id, challenge=challenge))
    clock.advance(6 * 60)
    response = await token_request(app, {"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": REDIRECT, "code_verifier": verifier},
                                   basic(client_id, secret))
    assert response.status_code == 400


async def test_authorize_sends_a_stranger_to_the_login_page(app, client, alexa_client):
    client_id, _ = alexa_client
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "s"}
    response = await client.get("/oauth/authorize?" + urlencode(params))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/oauth/authorize%3F")


async def _linked_tokens(app, client, client_id, secret):
    verifier, challenge = pkce()
    code = code_of(await authorize(client, client_id, challenge=challenge))
    response = await token_request(app, {"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": REDIRECT, "code_verifier": verifier},
                                   basic(client_id, secret))
    return await response.get_json()


async def test_revocation_ends_the_grant(app, client, alexa_client, pki):
    client_id, secret = alexa_client
    ada = await make_user("ada@example.com")
    await add_printer(ada, "Prusa")
    await login(client, "ada@example.com")
    tokens = await _linked_tokens(app, client, client_id, secret)
    response = await app.test_client().post("/oauth/revoke", form={"token": tokens["refresh_token"],
                                                                   "token_type_hint": "refresh_token"},
                                            headers=basic(client_id, secret))
    assert response.status_code == 200
    assert (await ask_alexa(app, pki, tokens["access_token"]))["response"]["card"]["type"] == "LinkAccount"
    refresh = await token_request(app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                  basic(client_id, secret))
    assert refresh.status_code == 400


async def test_disabling_the_skill_revokes_the_grant(app, client, alexa_client, pki):
    client_id, secret = alexa_client
    ada = await make_user("ada@example.com")
    await add_printer(ada, "Prusa")
    await login(client, "ada@example.com")
    tokens = await _linked_tokens(app, client, client_id, secret)
    body = body_of(envelope(request_type="AlexaSkillEvent.SkillDisabled", access_token=tokens["access_token"]))
    response = await app.test_client().post("/alexa", data=body, headers=signed_headers(body, pki.good))
    assert response.status_code == 200
    assert (await ask_alexa(app, pki, tokens["access_token"]))["response"]["card"]["type"] == "LinkAccount"


async def test_connected_apps_lists_and_revokes_grants(app, client, alexa_client, pki):
    client_id, secret = alexa_client
    ada = await make_user("ada@example.com")
    await add_printer(ada, "Prusa")
    csrf = await login(client, "ada@example.com")
    empty = await (await client.get("/account/apps")).get_data(as_text=True)
    assert "No app has access to your account" in empty
    tokens = await _linked_tokens(app, client, client_id, secret)
    await ask_alexa(app, pki, tokens["access_token"])
    page = await (await client.get("/account/apps")).get_data(as_text=True)
    assert "<h2>Alexa</h2>" in page
    assert "See your printers and their status" in page and "printers:read" in page
    assert re.search(r"Last used <time datetime=\"2026-11-22T12:00:00[^\"]*Z\">22 Nov 2026, 12:00 UTC</time>", page)
    response = await client.post(f"/account/apps/{client_id}/revoke", form={"csrf_token": csrf})
    assert response.status_code == 302
    after = await (await client.get(response.headers["Location"])).get_data(as_text=True)
    assert "Alexa no longer has access." in after and "<h2>Alexa</h2>" not in after
    assert (await ask_alexa(app, pki, tokens["access_token"]))["response"]["card"]["type"] == "LinkAccount"


async def test_apps_cannot_get_the_webhooks_scope_personal_tokens_can(app, client, alexa_client):
    """The webhooks scope is for personal tokens only: the client registry keeps apps to theirs."""
    from appliance.core.errors import HeraldError, status_of
    from appliance.oauth import server as oauth_service

    client_id, _secret = alexa_client
    herald = app.app.extensions["herald"]
    row = await alexa_service.alexa_client(herald)
    assert row.scopes == "printers:read"
    with pytest.raises(HeraldError) as raised:
        await oauth_service.create_client(herald, name="Scripts", redirect_uris=["https://app.example/cb"],
                                          scopes=["webhooks"])
    assert status_of(raised.value) == 400 and "webhooks" in raised.value.message
    # Even a client row edited to list it is not granted more than the registry allows.
    row.scopes = "printers:read webhooks"
    client_view = oauth_service._client_from_row(row, herald.secret_box)
    assert client_view.get_allowed_scope("printers:read webhooks") == "printers:read"

    await make_user("ada@example.com")
    await login(client, "ada@example.com")
    _verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st4te",
              "scope": "printers:read webhooks", "code_challenge": challenge, "code_challenge_method": "S256"}
    response = await client.get("/oauth/authorize?" + urlencode(params))
    body = await response.get_data(as_text=True)
    assert "Allow Alexa" not in body
    assert response.status_code == 302
    assert response.headers["Location"].startswith(REDIRECT + "?error=invalid_scope")


async def _refresh(app, client_id, secret, refresh_token):
    return await token_request(app, {"grant_type": "refresh_token", "refresh_token": refresh_token},
                               basic(client_id, secret))


async def test_a_rotated_refresh_token_used_again_ends_its_chain_only(app, client, alexa_client, pki, clock):
    """Reuse after rotation means two parties hold it: the chain it belongs to ends
    (the thief's and the client's tokens alike); another link of the same user stays."""
    client_id, secret = alexa_client
    ada = await make_user("ada@example.com")
    await add_printer(ada, "Prusa")
    await login(client, "ada@example.com")
    first = await _linked_tokens(app, client, client_id, secret)
    other = await _linked_tokens(app, client, client_id, secret)  # e.g. a second Amazon account
    rotated = await (await _refresh(app, client_id, secret, first["refresh_token"])).get_json()
    assert "refresh_token" in rotated

    clock.advance(61)  # past the grace for a client's own racing retry
    reuse = await _refresh(app, client_id, secret, first["refresh_token"])
    assert reuse.status_code == 400 and (await reuse.get_json())["error"] == "invalid_grant"
    # the chain is over: the tokens the rotation handed out no longer work ...
    assert (await ask_alexa(app, pki, rotated["access_token"]))["response"]["card"]["type"] == "LinkAccount"
    assert (await _refresh(app, client_id, secret, rotated["refresh_token"])).status_code == 400
    # ... while the other link of the same user goes on
    assert speech(await ask_alexa(app, pki, other["access_token"])) == "You have one printer: Prusa."
    assert (await _refresh(app, client_id, secret, other["refresh_token"])).status_code == 200


async def test_a_second_use_within_the_grace_is_refused_without_ending_the_chain(app, client, alexa_client, pki,
                                                                                 clock):
    client_id, secret = alexa_client
    ada = await make_user("ada@example.com")
    await add_printer(ada, "Prusa")
    await login(client, "ada@example.com")
    first = await _linked_tokens(app, client, client_id, secret)
    rotated = await (await _refresh(app, client_id, secret, first["refresh_token"])).get_json()
    clock.advance(30)
    assert (await _refresh(app, client_id, secret, first["refresh_token"])).status_code == 400
    assert speech(await ask_alexa(app, pki, rotated["access_token"])) == "You have one printer: Prusa."
    again = await _refresh(app, client_id, secret, rotated["refresh_token"])
    assert again.status_code == 200
    # every token of the chain carries the same grant id; the other link has its own
    rows = await AccessToken.filter(client_id=client_id).order_by("id")
    assert len({row.grant_id for row in rows}) == 1 and rows[0].grant_id


async def test_revoking_or_disabling_ends_only_that_link(app, client, alexa_client, pki):
    client_id, secret = alexa_client
    ada = await make_user("ada@example.com")
    await add_printer(ada, "Prusa")
    await login(client, "ada@example.com")
    first = await _linked_tokens(app, client, client_id, secret)
    second = await _linked_tokens(app, client, client_id, secret)
    third = await _linked_tokens(app, client, client_id, secret)
    response = await app.test_client().post("/oauth/revoke", form={"token": first["refresh_token"]},
                                            headers=basic(client_id, secret))
    assert response.status_code == 200
    body = body_of(envelope(request_type="AlexaSkillEvent.SkillDisabled", access_token=second["access_token"]))
    assert (await app.test_client().post("/alexa", data=body, headers=signed_headers(body, pki.good))).status_code == 200
    for gone in (first, second):
        assert (await ask_alexa(app, pki, gone["access_token"]))["response"]["card"]["type"] == "LinkAccount"
    assert speech(await ask_alexa(app, pki, third["access_token"])) == "You have one printer: Prusa."


async def _ada_with_a_printer(client) -> None:
    ada = await make_user("ada@example.com")
    await add_printer(ada, "Prusa")
    await login(client, "ada@example.com")


async def test_a_refresh_asking_for_a_wider_scope_keeps_the_refresh_token(app, client, alexa_client, pki):
    """invalid_scope is answered before the refresh token is used up, so the link survives."""
    client_id, secret = alexa_client
    await _ada_with_a_printer(client)
    tokens = await _linked_tokens(app, client, client_id, secret)
    wider = await token_request(app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                      "scope": "printers:read webhooks"}, basic(client_id, secret))
    assert wider.status_code == 400 and (await wider.get_json())["error"] == "invalid_scope"
    # the same refresh token still works, and so does the access token
    assert speech(await ask_alexa(app, pki, tokens["access_token"])) == "You have one printer: Prusa."
    same = await _refresh(app, client_id, secret, tokens["refresh_token"])
    assert same.status_code == 200, await same.get_data(as_text=True)
    narrower = await token_request(app, {"grant_type": "refresh_token", "scope": "printers:read",
                                         "refresh_token": (await same.get_json())["refresh_token"]},
                                   basic(client_id, secret))
    assert narrower.status_code == 200


async def test_reusing_an_authorization_code_revokes_the_tokens_issued_from_it(app, client, alexa_client, pki):
    """RFC 6749 4.1.2: a code used twice ends the tokens it gave, and those refreshed from them."""
    client_id, secret = alexa_client
    await _ada_with_a_printer(client)
    other = await _linked_tokens(app, client, client_id, secret)  # another link, untouched
    verifier, challenge = pkce()
    code = code_of(await authorize(client, client_id, challenge=challenge))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    first = await token_request(app, form, basic(client_id, secret))
    assert first.status_code == 200
    issued = await first.get_json()
    refreshed = await (await _refresh(app, client_id, secret, issued["refresh_token"])).get_json()
    again = await token_request(app, form, basic(client_id, secret))
    assert again.status_code == 400 and (await again.get_json())["error"] == "invalid_grant"
    for token in (issued["access_token"], refreshed["access_token"]):
        assert (await ask_alexa(app, pki, token))["response"]["card"]["type"] == "LinkAccount"
    assert (await _refresh(app, client_id, secret, refreshed["refresh_token"])).status_code == 400
    assert speech(await ask_alexa(app, pki, other["access_token"])) == "You have one printer: Prusa."
